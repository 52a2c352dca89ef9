"""Gallery entry ``underconstrained``: the chapter's "Regularization and Under-Constrained Problems" (sec. 7.3).

Linear regression with more features than examples (:data:`EXAMPLES` x :data:`FEATURES`, Gaussian) has a
singular X'X: the normal equations X'X w = X'y have infinitely many solutions. Weight decay solves
(X'X + alpha I) w = X'y instead, whose matrix is invertible for every alpha > 0 with condition number
(lambda_max + alpha) / alpha, and as alpha -> 0 its solution tends to the pseudo-inverse solution X^+ y, the
least-squares solution of minimum norm (:func:`regopt.regularize.ridge_path`).

Two solvers give the same w in exact arithmetic: the d x d "primal" system above, and the n x n "dual" system
(XX' + alpha I) c = y, w = X'c. In float64 the primal one inherits the 1/alpha condition number and its
rounding error overtakes the shrinking distance at small alpha; the dual one stays accurate.
"""

from __future__ import annotations

from pathlib import Path

import torch

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table

ENTRY = "underconstrained"
EXAMPLES, FEATURES = 20, 50
ALPHAS = tuple(10.0 ** (k / 2) for k in range(-20, 5))  # 1e-10 ... 1e2, two points per decade
HEADERS = (
    "alpha",
    "distance to X+y (dual solve)",
    "distance to X+y (primal solve)",
    "norm of w",
    "cond(X'X + alpha I)",
)


@single_threaded
def underconstrained(out: Path, progress: bool) -> GalleryResult:
    """Ridge on a 20 x 50 problem: distance to the pseudo-inverse solution and condition number vs alpha."""
    from regopt.lab.gallery.figures.regularize import plot_ridge_path
    from regopt.regularize import gram_condition_number, ridge_path, ridge_solution

    del progress  # instant
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(EXAMPLES, FEATURES, generator=generator, dtype=torch.float64)
    y = torch.randn(EXAMPLES, generator=generator, dtype=torch.float64)
    dual = ridge_path(x, y, ALPHAS, method="dual")
    primal = ridge_path(x, y, ALPHAS, method="primal")
    norms = [float(ridge_solution(x, y, alpha).norm()) for alpha in ALPHAS]
    rows = [
        (f"{a.alpha:g}", f"{a.distance:.2e}", f"{b.distance:.2e}", f"{n:.4f}", f"{a.condition:.3g}")
        for a, b, n in zip(dual, primal, norms, strict=True)
        if round(2 * torch.log10(torch.tensor(a.alpha)).item()) % 2 == 0  # the table: one alpha per decade
    ]

    singular = gram_condition_number(x, 0.0)
    folder = Path(out) / ENTRY
    figure = folder / "ridge_path.png"
    plot_ridge_path(
        ALPHAS,
        {
            "dual solve, (XX' + alpha I) c = y  (n x n)": [p.distance for p in dual],
            "primal solve, (X'X + alpha I) w = X'y  (d x d)": [p.distance for p in primal],
        },
        [p.condition for p in dual],
        figure,
        singular=singular,
        title=f"weight decay on an under-constrained problem: {EXAMPLES} examples, {FEATURES} features, float64",
    )
    note = f"\ncond(X'X) without weight decay: {singular:.3g} (rank {EXAMPLES} < {FEATURES}: singular up to rounding)\n"
    table = write_table(folder / "table.md", HEADERS, rows, title="the ridge path", append=note)
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table],
        numbers={
            f"distance at alpha={ALPHAS[0]:g} (dual / primal)": f"{dual[0].distance:.2e} / {primal[0].distance:.2e}",
            f"distance at alpha={ALPHAS[-1]:g}": f"{dual[-1].distance:.3g}",
            f"cond at alpha={ALPHAS[0]:g} / {ALPHAS[-1]:g}": f"{dual[0].condition:.3g} / {dual[-1].condition:.3g}",
            "cond(X'X), alpha = 0": f"{singular:.3g}",
        },
    )
