"""Gallery entry ``ill_conditioning``: the chapter's worked example of ill-conditioning ("Challenges in Neural
Network Optimization") on the toy problems of :mod:`regopt.diagnostics.toy_problems`, in well under a second.

f(x) = 30 x^2 from inputs 3, 4, 50 at learning rates 0.033, 0.034, 0.035; the criterion (1/2) eps^2 g'Hg against
eps g'g as a function of eps; and the two remedies of the chapter (an adaptive method, input normalization).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regopt.lab.gallery.base import GalleryResult, write_table

STEPS = 100
"""Gradient-descent iterations of the ill-conditioning example."""
ADAM_LR, ADAM_STEPS = 1.0, 300
TOL = 1e-6
"""Relative loss gap at which the least-squares gradient descent counts as converged."""


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
    from regopt.lab.gallery.figures.challenges import plot_criterion, plot_ill_conditioning_trajectories, plot_remedies

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
    table = write_table(folder / "table.md", headers, rows, title=title, digits=digits, append=f"\n{notes}\n")

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
    remedies = write_table(
        folder / "remedies.md",
        ("remedy", "measure", "value"),
        remedy_rows,
        title="remedies: an adaptive method; input normalization",
        digits={},
        append="\nLeast squares: 200 rows, features scaled 1 and 100, gradient descent from 0 at lr = 1/lambda_max.\n",
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
