"""Gallery entry ``optimizers``: chapter 8's optimizers side by side on one model, one data set and one budget.

Every optimizer trains the MLP of ``optimizers.toml`` (widths [100, 100], ReLU) on MNIST-1D from the same
initialization (seed 0) with the same batch order for the same 640 steps (20 epochs of 100 examples); only the
``[optimizer]`` section differs, as given in :data:`OPTIMIZERS`. Each run is an ordinary run directory
``<out>/optimizers/<name>/``, so ``regopt run <out>/optimizers/adam/config.toml`` reproduces any one alone.

Learning rates. Each optimizer's ``lr`` was picked from a small sweep on the validation split, which is fair
to all: the same protocol for each, lr on the grid {1e-4, 3e-4, 1e-3, ..., 1, 3, 10} over a window of four or
five values around the optimizer's usual range, seeds 0, 1 and 2, keeping the lr with the lowest mean *final*
validation error (no early stopping); every other hyperparameter keeps its textbook default (momentum 0.9,
RMSProp's rho 0.9, Adam's betas (0.9, 0.999)). Delta-bar-delta also had its decrease fraction ``phi`` swept over
{0.1, 0.01}: at Jacobs' phi = 0.1 the sign of a minibatch gradient flips so often that the per-weight rates
collapse and its best lr reached only ~0.57 validation error (the chapter warns that the method was made for
full-batch training). With phi = 0.01 the rates shrink slowly instead, which acts as a learning-rate decay that
the other optimizers, run at a constant lr here, do not get. Sweep results (mean final validation error over
the three seeds) are quoted beside each entry of :data:`OPTIMIZERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regopt.lab.gallery.base import GalleryResult, base_config, variant, write_table

ENTRY = "optimizers"
CHANCE_ERROR = 0.9
"""Error rate of guessing on MNIST-1D's 10 balanced classes."""

OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    # run name: (label, [optimizer] section). Swept lrs with mean final val error (3 seeds); chosen one first.
    "sgd": ("SGD", {"name": "sgd", "lr": 1.0}),  # 0.377; 0.3: 0.408, 3: 0.581
    "momentum": ("momentum", {"name": "sgd", "lr": 0.1, "momentum": 0.9}),  # 0.381; 0.03: 0.414, 0.3: 0.442
    "nesterov": ("Nesterov", {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}),  # 0.393; 0.03: 0.407
    "adagrad": ("AdaGrad", {"name": "adagrad", "lr": 0.1}),  # 0.392; 0.03: 0.403, 0.3: 0.450
    "rmsprop": ("RMSProp", {"name": "rmsprop", "lr": 0.01}),  # 0.401; 3e-3: 0.404, 0.03: 0.409
    "rmsprop_nesterov": (  # 0.393; 3e-4: 0.411, 3e-3: 0.404
        "RMSProp+Nesterov",
        {"name": "rmsprop", "lr": 1e-3, "momentum": 0.9, "nesterov": True},
    ),
    "adam": ("Adam", {"name": "adam", "lr": 0.01}),  # 0.385; 3e-3: 0.402, 0.03: 0.445
    "delta_bar_delta": (  # 0.351; 1: 0.418 (Jacobs' small kappa and theta; the class's defaults suit minibatches)
        "delta-bar-delta",
        {"name": "delta_bar_delta", "lr": 3.0, "kappa": 1e-4, "phi": 0.01, "theta": 0.7},
    ),
}

HEADERS = ("optimizer", "settings", "best val error", "final val error", "final train loss", "wall s")


def options(section: dict[str, Any]) -> str:
    """``lr=0.1, momentum=0.9, nesterov=true``: every key of an ``[optimizer]`` section but its name."""
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in section.items() if k != "name")


def optimizers(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """SGD, momentum, Nesterov, AdaGrad, RMSProp(+Nesterov), Adam, delta-bar-delta on one MNIST-1D MLP and budget; each lr from a small validation sweep."""  # noqa: E501
    from regopt.lab.report import plot_against_steps
    from regopt.lab.runs import run

    base = base_config(ENTRY, epochs)  # epochs: a smaller budget, for tests
    folder = Path(out) / ENTRY
    curves: list[tuple[str, list[dict[str, float]]]] = []
    rows: list[tuple[Any, ...]] = []
    for name, (label, section) in OPTIMIZERS.items():
        config = variant(base, ENTRY, name, {"optimizer": section})
        result = run(config, out=folder, force=True, progress=progress)
        s = result.summary
        curves.append((f"{label} ({options(section)})", result.history))
        rows.append(
            (
                label,
                options(section),
                s["best_val_error"],
                s["final_val_error"],
                s["final_train_loss"],
                s["wall_time_s"],
            )
        )

    figure, table_path = folder / "validation_error.png", folder / "table.md"
    steps = int(curves[0][1][-1]["step"])
    plot_against_steps(
        curves,
        figure,
        title=f"MLP on MNIST-1D: same model, data, seed and {steps} steps for every optimizer",
        chance=CHANCE_ERROR,
    )
    digits = {"best val error": 3, "final val error": 3, "final train loss": 3, "wall s": 1}
    title = "optimizers on MNIST-1D (MLP, same budget)"
    write_table(table_path, HEADERS, rows, title=title, digits=digits, heading=False)  # the file: the table alone

    best = min(rows, key=lambda row: row[3])
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table_path],
        numbers={
            "best optimizer (final val error)": best[0],
            "its final val error": best[3],
            "SGD final val error": rows[0][3],
            "steps per optimizer": steps,
        },
    )
