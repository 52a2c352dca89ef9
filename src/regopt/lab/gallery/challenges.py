"""Gallery entries ``ill_conditioning``, ``saddle`` and ``cliff``: the chapter's "Challenges in Neural Network
Optimization" on toy problems from :mod:`regopt.diagnostics.toy_problems`, each in well under a few seconds.

- ``ill_conditioning``: the chapter's worked example, f(x) = 30 x^2 from inputs 3, 4, 50 at learning rates 0.033,
  0.034, 0.035; the criterion (1/2) eps^2 g'Hg > eps g'g against eps; the two remedies of the chapter (an adaptive
  method, input normalization).
- ``saddle``: gradient descent, momentum and Adam leaving the saddle of x^2 - y^2.
- ``cliff``: gradient descent over a cliff, with and without gradient-norm clipping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regopt.lab.gallery import GalleryResult

STEPS = 100
"""Gradient-descent iterations of the ill-conditioning example."""
ADAM_LR, ADAM_STEPS = 1.0, 300
TOL = 1e-6
"""Relative loss gap at which the least-squares gradient descent counts as converged."""
SADDLE_START, SADDLE_LR, SADDLE_STEPS, ESCAPE = (1.0, 1e-3), 0.1, 60, 1.0
CLIFF_X0, CLIFF_LR, CLIFF_STEPS, CLIFF_CLIP = 0.5, 0.5, 40, 1.0
CLIFF_STARTS = tuple(round(-2.0 + 0.1 * i, 1) for i in range(31))
"""Starting points -2.0, -1.9, ..., 1.0 scanned to show that the jump is common, not a chosen accident."""


def _write(
    folder: Path,
    name: str,
    headers: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    *,
    title: str,
    digits: dict[str, int],
    notes: str = "",
) -> Path:
    """Write ``<folder>/<name>`` as markdown (``notes`` below the table) and print the table to the terminal."""
    from rich.console import Console

    from regopt.lab.atomic import write_text
    from regopt.lab.report import markdown_table, rich_table

    path = folder / name
    write_text(
        path, f"## {title}\n\n" + markdown_table(headers, rows, digits=digits) + (f"\n{notes}\n" if notes else "")
    )
    Console().print(rich_table(headers, rows, title=title, digits=digits))
    return path


def _seed_rows(runs: dict[float, Any]) -> list[tuple[Any, ...]]:
    """One row per (input, lr) of the chapter's example: multiplier, x1, final |x|, verdict, criterion at x0."""
    from regopt.diagnostics import toy_problems as tp

    rows = []
    for i, x0 in enumerate(tp.SEED_INPUTS):
        for lr, x in runs.items():
            final, criterion = abs(float(x[-1, i])), float(tp.ill_conditioning_criterion(x0, lr))
            verdict = "converges" if final < abs(x0) else "diverges"
            ratio = criterion / (tp.CURVATURE * x0) ** 2  # criterion / g'g
            rows.append((x0, lr, 1 - tp.CURVATURE * lr, float(x[1, i]), final, verdict, criterion, ratio))
    return rows


def ill_conditioning(out: Path, progress: bool) -> GalleryResult:
    """f(x) = 30x^2 from inputs 3, 4, 50 at lr 0.033/0.034/0.035: GD is stable only below 2/f'' = 1/30."""
    from regopt.diagnostics import toy_problems as tp
    from regopt.lab.figures_challenges import plot_criterion, plot_ill_conditioning_trajectories, plot_remedies

    folder = Path(out) / "ill_conditioning"
    boundary = tp.stable_lr_boundary(tp.CURVATURE)
    runs = {lr: tp.gradient_descent_1d(tp.SEED_INPUTS, lr, STEPS) for lr in tp.SEED_LRS}
    rows = _seed_rows(runs)
    verdicts = {lr: "/".join(sorted({row[5] for row in rows if row[1] == lr})) for lr in tp.SEED_LRS}
    said = "; ".join(f"{lr} {verdict}" for lr, verdict in verdicts.items())
    notes = (
        f"Boundary: the criterion eps g^2 (eps H/2 - 1) is zero at eps = 2/H = 1/30 = {boundary:.6f} for every x, "
        f"and gradient descent multiplies x by (1 - 60 eps), so for every input: {said}."
    )
    headers = ("x0", "lr", "1 - 60 lr", "x1", f"abs(x_{STEPS})", "verdict", "criterion", "criterion/g'g")
    digits = {"x0": 0, "lr": 3, "1 - 60 lr": 2, "x1": 2, f"abs(x_{STEPS})": 3, "criterion": 2, "criterion/g'g": 6}
    title = f"gradient descent on f(x) = 30 x^2, {STEPS} steps"
    table = _write(folder, "table.md", headers, rows, title=title, notes=notes, digits=digits)

    adam = tp.adam_1d(tp.SEED_INPUTS, lr=ADAM_LR, steps=ADAM_STEPS)
    X, y = tp.badly_scaled_least_squares()
    raw, normalized = tp.least_squares_gd(X, y, tol=TOL), tp.least_squares_gd(*tp.standardize(X, y), tol=TOL)
    remedy_rows = [
        (
            f"Adam lr={ADAM_LR:g}, x0 = 3, 4, 50",
            f"largest abs(x) after {ADAM_STEPS} steps",
            f"{float(adam[-1].abs().max()):.2e}",
        ),
        ("least squares, raw features", "condition number of X'X", f"{raw.condition_number:.1f}"),
        ("least squares, standardized", "condition number of X'X", f"{normalized.condition_number:.3f}"),
        ("least squares, raw features", f"GD iterations to {TOL:g}", str(raw.iterations)),
        ("least squares, standardized", f"GD iterations to {TOL:g}", str(normalized.iterations)),
    ]
    remedies = _write(
        folder,
        "remedies.md",
        ("remedy", "measure", "value"),
        remedy_rows,
        title="remedies: an adaptive method; input normalization",
        digits={},
        notes="Least squares: 200 rows, features scaled 1 and 100, gradient descent from 0 at lr = 1/lambda_max.",
    )

    files = [folder / "trajectories.png", folder / "criterion.png", folder / "remedies.png", table, remedies]
    plot_ill_conditioning_trajectories(runs, tp.SEED_INPUTS, files[0], curvature=tp.CURVATURE)
    plot_criterion(tp.SEED_INPUTS, tp.SEED_LRS, files[1], curvature=tp.CURVATURE, boundary=boundary)
    gd_lr = tp.SEED_LRS[-1]
    plot_remedies(adam, ADAM_LR, runs[gd_lr], gd_lr, tp.SEED_INPUTS, raw, normalized, files[2], tol=TOL)
    final = {(row[0], row[1]): row[4] for row in rows}
    return GalleryResult(
        entry="ill_conditioning",
        files=files,
        numbers={
            "stable lr boundary 2/H": boundary,
            **{f"lr {lr}": verdict for lr, verdict in verdicts.items()},
            f"|x| after {STEPS} steps from 50 at lr 0.033 / 0.034 / 0.035": " / ".join(
                f"{final[(50.0, lr)]:.4g}" for lr in tp.SEED_LRS
            ),
            f"Adam (lr {ADAM_LR:g}) largest final |x|": f"{float(adam[-1].abs().max()):.2e}",
            "condition number raw / standardized": f"{raw.condition_number:.4g} / {normalized.condition_number:.4g}",
            "GD iterations raw / standardized": f"{raw.iterations} / {normalized.iterations}",
        },
    )


def _momentum_growth(lr: float, momentum: float) -> float:
    """Growth factor of y under momentum on -y^2: y_{k+1} = y_k + momentum (y_k - y_{k-1}) + 2 lr y_k."""
    b = 1 + momentum + 2 * lr
    return (b + (b * b - 4 * momentum) ** 0.5) / 2


def saddle(out: Path, progress: bool) -> GalleryResult:
    """Gradient descent, momentum and Adam leaving the saddle of x^2 - y^2 from (1, 0.001)."""
    from regopt.diagnostics import toy_problems as tp
    from regopt.lab.figures_challenges import plot_saddle

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
    table = _write(folder, "table.md", headers, rows, title="leaving a saddle", digits=digits, notes=notes)
    figure = folder / "saddle.png"
    plot_saddle(runs[SADDLE_START], escapes[SADDLE_START], figure, threshold=ESCAPE)
    never = [name for name, step in escapes[ridge].items() if step is None]
    return GalleryResult(
        entry="saddle",
        files=[figure, table],
        numbers={f"escape step ({name})": step for name, step in escapes[SADDLE_START].items()}
        | {"methods that never escape from y = 0 exactly": ", ".join(never) or "none"},
    )


def cliff(out: Path, progress: bool) -> GalleryResult:
    """Gradient descent over a cliff: unclipped steps jump far away; clipping the gradient norm to 1 walks down."""
    from regopt.diagnostics import toy_problems as tp
    from regopt.lab.figures_challenges import plot_cliff

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
    table = _write(
        folder,
        "table.md",
        headers,
        rows,
        title="gradient descent over a cliff",
        notes=notes,
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
