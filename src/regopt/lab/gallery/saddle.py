"""Gallery entry ``saddle``: gradient descent, momentum and Adam leaving the saddle of f(x, y) = x^2 - y^2, the
chapter's "Saddle Points" on the toy problems of :mod:`regopt.diagnostics.toy_problems`, in well under a second.

Started next to the saddle each method escapes along y at its own rate; started exactly on the ridge y = 0 none
ever sees a gradient along y, so none leaves.
"""

from __future__ import annotations

from pathlib import Path

from regopt.lab.gallery.base import GalleryResult, write_table

SADDLE_START, SADDLE_LR, SADDLE_STEPS, ESCAPE = (1.0, 1e-3), 0.1, 60, 1.0


def _momentum_growth(lr: float, momentum: float) -> float:
    """Growth factor of y under momentum on -y^2: y_{k+1} = y_k + momentum (y_k - y_{k-1}) + 2 lr y_k."""
    b = 1 + momentum + 2 * lr
    return (b + (b * b - 4 * momentum) ** 0.5) / 2


def saddle(out: Path, progress: bool) -> GalleryResult:
    """Gradient descent, momentum and Adam leaving the saddle of x^2 - y^2 from (1, 0.001)."""
    from regopt.diagnostics import toy_problems as tp
    from regopt.lab.gallery.figures.challenges import plot_saddle

    folder = Path(out) / "saddle"
    ridge = (SADDLE_START[0], 0.0)  # exactly on the ridge: no gradient along y
    runs = {start: tp.saddle_trajectories(start, SADDLE_STEPS, lr=SADDLE_LR) for start in (SADDLE_START, ridge)}
    escapes = {start: {name: tp.escape_step(run, ESCAPE) for name, run in r.items()} for start, r in runs.items()}
    rows = []
    for start, by_method in runs.items():
        for name, run in by_method.items():
            step = escapes[start][name]
            k = SADDLE_STEPS if step is None else step
            where = f"({start[0]:g}, {start[1]:g})"
            rows.append((name, where, "never" if step is None else step, float(run.params[k, 0]), float(run.loss[k])))
    headers = ("method", "start", f"escape step (abs(y) > {ESCAPE:g})", "x at escape/end", "f at escape/end")
    notes = (
        f"lr = {SADDLE_LR} for all three, momentum 0.9, Adam's default betas, {SADDLE_STEPS} steps. Gradient descent "
        f"multiplies y by 1 + 2 lr = {1 + 2 * SADDLE_LR:g} per step; momentum's growth factor (the larger root of "
        f"r^2 - (1.9 + 2 lr) r + 0.9) is {_momentum_growth(SADDLE_LR, 0.9):.2f}; Adam's first step moves y by ~lr. "
        "Started exactly on the ridge y = 0 the gradient has no y component there, and a method that never sees one "
        "never leaves."
    )
    digits = {"x at escape/end": 4, "f at escape/end": 3}
    table = write_table(
        folder / "table.md", headers, rows, title="leaving a saddle", digits=digits, append=f"\n{notes}\n"
    )
    figure = folder / "saddle.png"
    plot_saddle(runs[SADDLE_START], escapes[SADDLE_START], figure, threshold=ESCAPE)
    never = [name for name, step in escapes[ridge].items() if step is None]
    return GalleryResult(
        entry="saddle",
        files=[figure, table],
        numbers={f"escape step ({name})": step for name, step in escapes[SADDLE_START].items()}
        | {"methods that never escape from y = 0 exactly": ", ".join(never) or "none"},
    )
