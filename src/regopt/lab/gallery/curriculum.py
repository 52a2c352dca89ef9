"""Gallery entry ``curriculum`` (sec. 8.7.6): curriculum learning and continuation methods.

Easy-first training (difficulty = a reference model's loss) vs random order (and hard-first) on MNIST-1D, and
continuation on a 1-D wiggly function (:func:`regopt.curriculum.smoothed_loss`). The plain training loops are in
:mod:`.meta_runs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean

import torch

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table
from regopt.lab.gallery.meta_runs import LR, continuation_demo, curriculum_run, mlp, mnist1d, train_epochs


@single_threaded
def curriculum(out: Path, progress: bool, *, epochs: int = 20, seeds: Sequence[int] = (0, 1, 2)) -> GalleryResult:
    """Easy-first curriculum vs random order on MNIST-1D; continuation on a 1-D function with local minima."""
    from regopt.curriculum import Curriculum, difficulty_by_loss
    from regopt.lab.gallery.figures.meta_algorithms import plot_continuation, plot_val_curves

    data = mnist1d()
    torch.manual_seed(100)
    reference = mlp([32])  # a small reference model, trained briefly on the same training set
    train_epochs(reference, data, 3, torch.Generator().manual_seed(100), [])
    difficulty = difficulty_by_loss(reference, None, data.x_train, data.y_train)  # None: cross-entropy
    half = epochs // 2
    variants: dict[str, tuple[Curriculum | None, bool]] = {  # name: (schedule, same steps per epoch as random)
        "random order": (None, True),
        "curriculum (easy first)": (Curriculum(difficulty, start_fraction=0.2, epochs_to_full=half), False),
        "curriculum, same steps": (Curriculum(difficulty, start_fraction=0.2, epochs_to_full=half), True),
        "anti-curriculum (hard first), same steps": (
            Curriculum(-difficulty, start_fraction=0.2, epochs_to_full=half),
            True,
        ),
    }
    curves: dict[str, list[list[float]]] = {v: [] for v in variants}
    results: dict[str, list[tuple[float, int]]] = {v: [] for v in variants}
    for seed in seeds:
        for name, (schedule, same_steps) in variants.items():
            history, test, steps = curriculum_run(schedule, same_steps, seed, data, epochs)
            curves[name].append(history)
            results[name].append((test, steps))
    rows = []
    for name in variants:
        tests = [t for t, _ in results[name]]
        finals = [h[-1] for h in curves[name]]
        bests = [min(h) for h in curves[name]]
        rows.append((name, mean(bests), mean(finals), mean(tests), results[name][0][1]))
    folder = Path(out) / "curriculum"
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
