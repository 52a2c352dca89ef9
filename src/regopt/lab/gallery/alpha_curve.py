"""Gallery entry ``alpha_curve``: the chapter's "Selecting regularization term alpha", as a sweep of L2's alpha.

The MLP of ``alpha_curve.toml`` (widths [256, 256], ~80k weights) learns 500 MNIST-1D signals; without a
penalty it drives training error to 0 while validation error stays near 0.59. The entry trains it once for
each alpha of :data:`ALPHAS` (a log grid; same initialization, batches and 60 epochs for every alpha) with the
L2 penalty alpha/2 ||w||^2, and plots final training and validation error against alpha. Small alpha over-fits
(training error 0, a wide gap), large alpha under-fits (both errors high); the validation error is lowest in
between. Each run is a run directory ``<out>/alpha_curve/alpha-<value>/``.

A direct loop over a fixed grid, rather than ``regopt tune``: it is deterministic and shows the whole curve,
not only the best point (``regopt tune <config> --param regularize.l2.alpha=loguniform:1e-4:1e-1`` searches the
same range with Optuna).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from regopt.lab.gallery.base import GalleryResult, base_config, single_threaded, variant, write_table

ENTRY = "alpha_curve"
ALPHAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
HEADERS = ("alpha", "final train error", "final val error", "best val error", "final val loss", "wall s")


@single_threaded
def alpha_curve(
    out: Path, progress: bool, *, epochs: int | None = None, alphas: Sequence[float] = ALPHAS
) -> GalleryResult:
    """Train and validation error against L2's alpha (log grid) for an over-fitting MNIST-1D MLP: a U-curve."""
    from regopt.lab.gallery.figures.regularize import plot_alpha_curve
    from regopt.lab.runs import run

    base = base_config(ENTRY, epochs)
    folder = Path(out) / ENTRY
    points, rows = [], []
    for alpha in sorted(alphas):
        config = variant(base, ENTRY, f"alpha-{alpha:g}", {"regularize.l2.alpha": alpha})
        s = run(config, out=folder, force=True, progress=progress).summary
        points.append(
            {"alpha": alpha, "final_train_error": s["final_train_error"], "final_val_error": s["final_val_error"]}
        )
        rows.append(
            (
                alpha,
                s["final_train_error"],
                s["final_val_error"],
                s["best_val_error"],
                s["final_val_loss"],
                s["wall_time_s"],
            )
        )

    figure = folder / "alpha_curve.png"
    size, steps = base["data"]["train_size"], s["steps"]
    plot_alpha_curve(points, figure, title=f"L2 weight alpha: MLP on {size} MNIST-1D signals, {steps} steps per alpha")
    digits = {"final train error": 3, "final val error": 3, "best val error": 3, "final val loss": 3, "wall s": 1}
    table = write_table(folder / "table.md", HEADERS, rows, title="L2 alpha sweep", digits=digits)
    best = min(points, key=lambda p: p["final_val_error"])
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table],
        numbers={
            "best alpha (final val error)": best["alpha"],
            "its val error": best["final_val_error"],
            f"val error at alpha={points[0]['alpha']:g}": points[0]["final_val_error"],
            f"train error at alpha={points[0]['alpha']:g} / {points[-1]['alpha']:g}": (
                f"{points[0]['final_train_error']:.3f} / {points[-1]['final_train_error']:.3f}"
            ),
        },
    )
