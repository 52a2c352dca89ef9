"""Gallery entry ``second_order``: the book's sec. 8.6 (approximate second-order methods) against the
ill-conditioning of sec. 8.2.1, in a few seconds on one thread.

Figure ``quadratics.png``: iterations to bring ``f(x) = 1/2 (x - x*)'A(x - x*)`` (``n = 100``, float64, eigenvalues
log-spaced in ``[1, kappa]``) below ``1e-8 f(x0)``, for ``kappa = 10 ... 1e4``, per method (see
:mod:`regopt.lab.gallery.quadratic_counts` for what each counts as an iteration), beside the theory: gradient
descent ~ kappa, heavy ball and CG ~ sqrt(kappa), Newton 1.

Figure ``mlp.png``: an MLP (64 -> 64 tanh -> 10, float64) trained full-batch on the digits' training split with
``regopt.optim.LBFGS`` and with Adam (its best lr of a small sweep), the same budget of loss-and-gradient
evaluations: training loss against evaluations and against wall time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table
from regopt.lab.gallery.quadratic_counts import METHODS, count_all, quadratic, theory

ENTRY = "second_order"
N, KAPPAS, EPS, SEED = 100, (10.0, 1e2, 1e3, 1e4), 1e-8, 0
CAP, QUASI_NEWTON_CAP = 100_000, 2_000
"""Most iterations of the first-order methods and CG, and of BFGS / L-BFGS."""
EVALUATIONS, HIDDEN = 300, 64
"""The MLP's budget of full-batch loss-and-gradient evaluations per optimizer, and its hidden width."""
ADAM_LRS = (3e-3, 1e-2, 3e-2, 1e-1)
"""Adam's lr sweep; the table and figure show the lr with the lowest final training loss."""
AT = 50
"""Evaluations at which the MLP's losses are compared (and at the end of the budget)."""

Curve = list[tuple[int, float, float]]
"""(evaluations, seconds, training loss so far: the lowest evaluated) per loss-and-gradient evaluation."""


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 10)).double()


def train_mlp(x: Tensor, y: Tensor, method: str, lr: float, budget: int = EVALUATIONS) -> tuple[nn.Module, Curve]:
    """Train a fresh :func:`_mlp` (seed :data:`SEED`) full-batch on ``(x, y)`` for at most ``budget`` evaluations
    with ``"lbfgs"`` (one ``step`` of ``max_iter=budget``, strong Wolfe) or ``"adam"`` (one step an evaluation)."""
    from regopt.optim import LBFGS

    model = _mlp(SEED)
    curve: Curve = []
    start = time.perf_counter()

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        value = loss.item()
        best = min(value, curve[-1][2]) if curve else value
        curve.append((len(curve) + 1, time.perf_counter() - start, best))
        return loss

    optimizer: torch.optim.Optimizer
    if method == "lbfgs":
        optimizer = LBFGS(model.parameters(), lr=lr, max_iter=budget, max_eval=budget, tolerance_change=0.0)
        optimizer.step(closure)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(budget):
            optimizer.step(closure)
    return model, curve


def at_evaluation(curve: Curve, k: int) -> float:
    """The loss after ``k`` evaluations (the last one when the run stopped earlier)."""
    return curve[min(k, len(curve)) - 1][2]


def at_time(curve: Curve, seconds: float) -> float:
    """The loss reached within ``seconds`` (the first evaluation's if none was that fast)."""
    return min((loss for _, t, loss in curve if t <= seconds), default=curve[0][2])


def _quadratic_table(folder: Path) -> tuple[dict[float, dict[str, Any]], Path, Path]:
    from regopt.lab.atomic import write_csv

    counts = {kappa: count_all(quadratic(kappa, N, SEED), EPS, CAP, QUASI_NEWTON_CAP) for kappa in KAPPAS}
    rows, records = [], []
    for kappa, by_method in counts.items():
        bounds = theory(kappa, EPS)
        for method in METHODS:
            c = by_method[method]
            bound = bounds.get(method, bounds["CG"] if method == "heavy ball" else None)
            rows.append((f"{kappa:g}", method, c.iterations or f"> {CAP}", c.evaluations, bound))
            records.append({"kappa": kappa, "method": method, "iterations": c.iterations, "evaluations": c.evaluations})
    csv = folder / "iterations.csv"
    write_csv(csv, records)
    note = (
        f"\nn = {N}, float64, eigenvalues log-spaced in [1, kappa], x0 = 0, random x* (seed {SEED}); an iteration is "
        "one update of each method (BFGS / L-BFGS: one strong-Wolfe line search and quasi-Newton update, L-BFGS "
        "history 10); evaluations are gradients (products A v, closure calls; Newton's Hessian is n more rows). "
        "Theory: ||x_k - x*||_A bound reaching sqrt(1e-8), gradient descent at lr 2/(L + mu) ~ kappa ln(1e4)/2, "
        "CG (and heavy ball's rate) ~ sqrt(kappa) ln(2e4)/2. In exact arithmetic CG ends within n iterations; in "
        "float64 at kappa = 1e4 rounding costs it that (it still stays far under its bound).\n"
    )
    headers = ("kappa", "method", "iterations", "evaluations", "theory")
    table = write_table(
        folder / "table.md",
        headers,
        rows,
        title=f"iterations to f < {EPS:g} f(x0) on a quadratic, n = {N}",
        digits={"theory": 1},
        append=note,
    )
    return {k: {m: c.iterations for m, c in v.items()} for k, v in counts.items()}, table, csv


def _mlp_table(folder: Path) -> tuple[dict[str, Curve], str, Path, dict[str, tuple[float, float]]]:
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset

    data = load_dataset(DigitsData(name="digits"))
    x, y = data.x_train.double(), data.y_train
    sweep = {lr: train_mlp(x, y, "adam", lr) for lr in ADAM_LRS}
    best_lr = min(ADAM_LRS, key=lambda lr: sweep[lr][1][-1][2])
    runs = {"L-BFGS": train_mlp(x, y, "lbfgs", 1.0), f"Adam lr={best_lr:g}": sweep[best_lr]}
    curves = {name: curve for name, (_, curve) in runs.items()}
    seconds = min(curve[-1][1] for curve in curves.values())
    rows: list[tuple[Any, ...]] = []
    for name, (model, curve) in runs.items():
        with torch.no_grad():
            error = float((model(data.x_test.double()).argmax(1) != data.y_test).double().mean())
        losses = (at_evaluation(curve, AT), at_time(curve, seconds), curve[-1][2])
        rows.append((name, len(curve), curve[-1][1], *(f"{v:.3g}" for v in losses), error))
    sweep_rows: list[tuple[Any, ...]] = [
        (f"Adam lr={lr:g} (sweep)", len(c), c[-1][1], f"{at_evaluation(c, AT):.3g}", None, f"{c[-1][2]:.3g}", None)
        for lr, (_, c) in sweep.items()
    ]
    headers = (
        "optimizer",
        "evaluations",
        "wall s",
        f"loss at {AT} evals",
        "loss at equal time",
        "final loss",
        "test error",
    )
    note = (
        f"\nMLP 64-{HIDDEN}-10 (tanh, float64, seed {SEED}), full batch on the {len(x)} training digits, "
        f"cross-entropy, at most {EVALUATIONS} loss-and-gradient evaluations each, one thread. L-BFGS: history 10, "
        "strong Wolfe, lr 1 (it stops once max |gradient| <= 1e-7). The training set is separable, so the loss can "
        f"go to 0 by growing the weights; 'loss' is the lowest evaluated so far; "
        f"equal time: {seconds:.2f} s, the shorter run's.\n"
    )
    digits = {"wall s": 2, "test error": 3}
    title = "L-BFGS vs Adam, digits MLP"
    table = write_table(folder / "mlp.md", headers, rows + sweep_rows, title=title, digits=digits, append=note)
    lbfgs, adam = curves.values()
    numbers = {
        f"L-BFGS / Adam loss at {AT} evaluations": (at_evaluation(lbfgs, AT), at_evaluation(adam, AT)),
        "L-BFGS / Adam loss at equal time": (at_time(lbfgs, seconds), at_time(adam, seconds)),
        "L-BFGS / Adam final loss": (lbfgs[-1][2], adam[-1][2]),
        "L-BFGS / Adam evaluations": (len(lbfgs), len(adam)),
    }
    return curves, f"{best_lr:g}", table, numbers


@single_threaded
def second_order(out: Path, progress: bool) -> GalleryResult:
    """Iterations vs condition number (GD, heavy ball, CG, BFGS, L-BFGS, Newton); L-BFGS vs Adam on a digits MLP;
    SAM vs SGD + momentum on 200 digits (:mod:`regopt.lab.gallery.sharpness`)."""
    from regopt.lab.gallery.figures.second_order import plot_mlp, plot_quadratics, plot_sharpness
    from regopt.lab.gallery.sharpness import figure_title, sharpness_table

    del progress  # a few seconds: no progress bar
    folder = Path(out) / ENTRY
    iterations, table, csv = _quadratic_table(folder)
    curves, best_lr, mlp_table, mlp_numbers = _mlp_table(folder)
    figures = [folder / "quadratics.png", folder / "mlp.png"]
    plot_quadratics(iterations, {kappa: theory(kappa, EPS) for kappa in KAPPAS}, figures[0], n=N, eps=EPS)
    plot_mlp(curves, figures[1])
    runs, sharpness_md, sharpness_numbers = sharpness_table(folder)
    figures.append(folder / "sharpness.png")
    plot_sharpness(runs, figures[2], title=figure_title(runs))

    def ratio(method: str) -> float:
        return iterations[1e3][method] / iterations[10.0][method]

    numbers: dict[str, Any] = {
        f"{method} iterations, kappa = {' / '.join(f'{k:g}' for k in KAPPAS)}": " / ".join(
            str(iterations[k][method]) for k in KAPPAS
        )
        for method in METHODS
    }
    first = ("gradient descent", "heavy ball", "CG")
    numbers |= {f"{m} iterations ratio kappa 1e3 / 10": f"{ratio(m):.3g}" for m in first}
    numbers["Adam lr (best of sweep)"] = best_lr
    numbers |= {key: f"{a:.3g} / {b:.3g}" for key, (a, b) in mlp_numbers.items()}
    numbers |= sharpness_numbers
    files = [*figures[:2], table, mlp_table, csv, figures[2], sharpness_md]
    return GalleryResult(entry=ENTRY, files=files, numbers=numbers)
