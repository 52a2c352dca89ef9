"""Gallery entry ``cliff``: gradient descent over a cliff, with and without gradient-norm clipping, the chapter's
"Cliffs and Exploding Gradients" on the toy problems of :mod:`regopt.diagnostics.toy_problems`, in under a second.
"""

from __future__ import annotations

from pathlib import Path

from regopt.lab.gallery.base import GalleryResult, write_table

CLIFF_X0, CLIFF_LR, CLIFF_STEPS, CLIFF_CLIP = 0.5, 0.5, 40, 1.0
CLIFF_STARTS = tuple(round(-2.0 + 0.1 * i, 1) for i in range(31))
"""Starting points -2.0, -1.9, ..., 1.0 scanned to show that the jump is common, not a chosen accident."""


def cliff(out: Path, progress: bool) -> GalleryResult:
    """Gradient descent over a cliff: unclipped steps jump far away; clipping the gradient norm to 1 walks down."""
    from regopt.diagnostics import toy_problems as tp
    from regopt.lab.gallery.figures.challenges import plot_cliff

    folder = Path(out) / "cliff"
    runs = {
        "no clipping": tp.cliff_trajectories(CLIFF_X0, CLIFF_LR, CLIFF_STEPS, None),
        f"clip_grad_norm_ (max_norm {CLIFF_CLIP:g})": tp.cliff_trajectories(
            CLIFF_X0, CLIFF_LR, CLIFF_STEPS, CLIFF_CLIP
        ),
    }
    rows = []
    for name, run in runs.items():
        jump = float((run.loss[1:] - run.loss[:-1]).max())
        rows.append(
            (name, float(run.params[:, 0].max()), float(run.grad_norm.max()), max(jump, 0.0), float(run.loss[-1]))
        )
    jumps = {None: 0, CLIFF_CLIP: 0}
    for x0 in CLIFF_STARTS:
        for clip in jumps:
            loss = tp.cliff_trajectories(x0, CLIFF_LR, CLIFF_STEPS, clip).loss
            jumps[clip] += bool((loss[1:] - loss[:-1]).max() > 1.0)
    headers = ("run", "farthest x", "max abs(f')", "largest loss increase", f"loss after {CLIFF_STEPS} steps")
    notes = (
        f"x0 = {CLIFF_X0}, lr = {CLIFF_LR}; the minimum is f(5) = 0 beyond the cliff at x = 2. "
        f"Over {len(CLIFF_STARTS)} starts x0 = -2.0, -1.9, ..., 1.0, the loss rose by more than 1 in one step "
        f"in {jumps[None]} unclipped runs and {jumps[CLIFF_CLIP]} clipped ones "
        "(it depends on whether a step lands on the cliff face)."
    )
    table = write_table(
        folder / "table.md",
        headers,
        rows,
        title="gradient descent over a cliff",
        append=f"\n{notes}\n",
        digits={"farthest x": 2, "max abs(f')": 1, "largest loss increase": 2, f"loss after {CLIFF_STEPS} steps": 4},
    )
    figure = folder / "cliff.png"
    plot_cliff(runs, figure, clip=CLIFF_CLIP)
    return GalleryResult(
        entry="cliff",
        files=[figure, table],
        numbers={
            "largest loss increase, unclipped / clipped": f"{rows[0][3]:.1f} / {rows[1][3]:.1f}",
            "farthest x, unclipped / clipped": f"{rows[0][1]:.1f} / {rows[1][1]:.2f}",
            f"loss after {CLIFF_STEPS} steps, unclipped / clipped": f"{rows[0][4]:.3f} / {rows[1][4]:.4f}",
            f"starts with a jump (of {len(CLIFF_STARTS)}), unclipped / clipped": f"{jumps[None]} / {jumps[CLIFF_CLIP]}",
        },
    )
