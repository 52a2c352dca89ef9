"""Gallery entry ``curriculum`` (sec. 8.7.6): curriculum learning and continuation methods.

Easy-first training (difficulty = a reference model's loss) vs random order (and hard-first) on MNIST-1D, and
continuation on a 1-D wiggly function (:func:`regopt.curriculum.smoothed_loss`). Every model is an ordinary run
of ``curriculum.toml`` (``[curriculum]`` is the Trainer's batch order), written under the entry's directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from regopt.lab.gallery.base import GalleryResult, base_config, run_seeds, single_threaded, write_table
from regopt.lab.gallery.meta_runs import LR, continuation_demo

ENTRY = "curriculum"


@single_threaded
def curriculum(out: Path, progress: bool, *, epochs: int = 20, seeds: Sequence[int] = (0, 1, 2)) -> GalleryResult:
    """Easy-first curriculum vs random order on MNIST-1D; continuation on a 1-D function with local minima."""
    from regopt.lab.gallery.figures.meta_algorithms import plot_continuation, plot_val_curves

    del progress  # a few seconds a run
    half = epochs // 2
    base = base_config(ENTRY, epochs)
    base["curriculum"]["epochs_to_full"] = half
    variants: dict[str, tuple[str, dict[str, Any]]] = {  # table row: (run name, changes to the base config)
        "random order": ("random", {"curriculum": None}),
        "curriculum (easy first)": ("easy-first", {}),
        "curriculum, same steps": ("easy-first-same-steps", {"curriculum.same_steps": True}),
        "anti-curriculum (hard first), same steps": (
            "hard-first-same-steps",
            {"curriculum.same_steps": True, "curriculum.order": "hard_first"},
        ),
    }
    folder = Path(out) / ENTRY
    runs = run_seeds(base, ENTRY, variants, seeds, folder)
    curves = {name: [[row["val_error"] for row in r.history] for r in runs[name]] for name in variants}
    results = {name: [(r.summary["test_error"], r.summary["steps"]) for r in runs[name]] for name in variants}
    rows = []
    for name in variants:
        tests = [t for t, _ in results[name]]
        finals = [h[-1] for h in curves[name]]
        bests = [min(h) for h in curves[name]]
        rows.append((name, mean(bests), mean(finals), mean(tests), results[name][0][1]))
    figure, cont_figure = folder / "curves.png", folder / "continuation.png"
    plot_val_curves(
        {name: [mean(c) for c in zip(*curves[name], strict=True)] for name in variants},
        figure,
        title=f"MLP [100, 100] on MNIST-1D, Adam lr={LR}: curricula from 20% to all examples by epoch {half + 1}",
        boundaries=[half],
        boundary_label="curricula reach all examples",
    )
    continuation = continuation_demo()
    plot_continuation(continuation, cont_figure)
    headers = ("order", "best val error", "final val error", "mean test error", "optimizer steps")
    note = (
        f"\nDifficulty: loss of a [32]-MLP trained 3 epochs on the same examples. {epochs} epochs for all; in "
        f"epoch e = 1, 2, ... the curricula use the easiest (hardest) fraction min(1, 0.2 + 0.8 (e - 1) / {half}) "
        "of the examples, once (fewer steps) or cycled to as many steps as random order (same steps). "
        f"Mean of seeds {list(seeds)}.\n\n"
        "## continuation on f(w) = w^2 + 2 sin(5w)\n\n"
        f"Gradient descent from w = {continuation['start']} stops at w = {continuation['plain'][-1]:.3f} "
        f"(f = {continuation['f_plain']:.3f}); continuation with sigma = {continuation['sigmas'][0]:.2f} ... 0 "
        f"ends at w = {continuation['path'][-1]:.3f} (f = {continuation['f_path']:.3f}); the global minimum is at "
        f"w = {continuation['global']:.3f}.\n"
    )
    digits = dict.fromkeys(headers[1:4], 3)
    table = write_table(
        folder / "table.md", headers, rows, title="curriculum vs random order", digits=digits, append=note
    )
    return GalleryResult(
        entry="curriculum",
        files=[figure, cont_figure, table],
        numbers={
            **{f"mean test error, {row[0]}": row[3] for row in rows},
            "continuation: final w (global minimum)": f"{continuation['path'][-1]:.3f} ({continuation['global']:.3f})",
            "plain gradient descent: final w": round(continuation["plain"][-1], 3),
        },
    )
