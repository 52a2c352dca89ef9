"""SAM against its base optimizer on 200 digits, for the gallery entry ``second_order``: does sharpness-aware
minimization end in a flatter minimum (a smaller top Hessian eigenvalue of the training loss), and does it test
better?

Setup (a fixed subset, so the network can fit it and the minimum it ends in is what differs): the first
:data:`SUBSET` training digits; an MLP 64 -> :data:`HIDDEN` tanh -> 10 (float64); mini-batches of :data:`BATCH`
drawn from a generator seeded like the model, so the base run and the SAM run of a seed see the same
initialization and the same batches; SGD with lr :data:`LR` and heavy-ball momentum :data:`MOMENTUM` for
:data:`STEPS` steps, alone or inside :class:`regopt.optim.SAM` (radius :data:`RHO`). At the end: the training
loss on the 200, the error on the whole test split, and the top eigenvalue of the Hessian of the training loss on
the 200 (Lanczos on :class:`regopt.diagnostics.HessianOperator`).

Cross-entropy's Hessian shrinks with the loss on fitted examples (its ``p (1 - p)`` factors), so a run that ends at
a lower training loss is also flatter for that reason alone; the table shows both, and its note says which way
each went.

References:
    Foret, Kleiner, Mobahi & Neyshabur (2021), Sharpness-Aware Minimization for Efficiently Improving
    Generalization, ICLR. Keskar et al. (2017), On Large-Batch Training for Deep Learning: Generalization Gap and
    Sharp Minima, ICLR (sharpness as the top Hessian eigenvalue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.gallery.base import write_table

SUBSET, HIDDEN, BATCH, STEPS = 200, 64, 20, 500
"""Training examples (the first of the training split), hidden width, mini-batch size, optimizer steps."""
LR, MOMENTUM, RHO = 0.05, 0.9, 0.1
"""The base optimizer (SGD with heavy-ball momentum) and SAM's radius."""
SEEDS = (0, 1, 2)
METHODS = ("SGD", "SAM")


@dataclass(frozen=True)
class Outcome:
    """One finished run: training loss (on the subset), test error, top Hessian eigenvalue of the training loss."""

    loss: float
    error: float
    sharpness: float


def train(x: Tensor, y: Tensor, seed: int, rho: float | None, *, steps: int = STEPS, hidden: int = HIDDEN) -> nn.Module:
    """Train a fresh MLP (seed ``seed``) on ``(x, y)`` with SGD + momentum, inside SAM of radius ``rho`` unless
    ``rho`` is None; ``steps`` mini-batches of :data:`BATCH` drawn without replacement per step, the same for both."""
    from regopt.optim import SAM

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, 10)).to(x.dtype)
    base = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    sam = None if rho is None else SAM(model.parameters(), base, rho=rho)
    batches = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randperm(len(x), generator=batches)[:BATCH]
        closure = _closure(model, base, x[index], y[index])
        if sam is None:
            closure()
            base.step()
        else:
            sam.step(closure)
    return model


def _closure(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Callable[[], Tensor]:
    """Zero the gradients, compute the loss on ``(x, y)``, backward, return the loss (what SAM calls twice)."""

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def top_eigenvalue(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The largest eigenvalue of the Hessian of ``cross_entropy(model(x), y)`` w.r.t. all of ``model``'s
    parameters (Lanczos, relative residual 1e-7)."""
    from regopt.diagnostics import HessianOperator, top_eigenvalues

    return float(top_eigenvalues(HessianOperator(model, F.cross_entropy, x, y), 1, iterations=200, tol=1e-7)[0])


def evaluate(model: nn.Module, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor) -> Outcome:
    """Training loss on ``(x, y)``, error on ``(x_test, y_test)``, and :func:`top_eigenvalue` on ``(x, y)``."""
    with torch.no_grad():
        loss = float(F.cross_entropy(model(x), y))
        error = float((model(x_test).argmax(1) != y_test).double().mean())
    return Outcome(loss, error, top_eigenvalue(model, x, y))


def compare(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor) -> dict[str, list[Outcome]]:
    """Per method (:data:`METHODS`), the :class:`Outcome` of each seed in :data:`SEEDS`."""
    rhos = {"SGD": None, "SAM": RHO}
    return {m: [evaluate(train(x, y, s, rhos[m]), x, y, x_test, y_test) for s in SEEDS] for m in METHODS}


def mean(outcomes: list[Outcome], field: str) -> float:
    """The mean of ``field`` over the seeds."""
    return sum(getattr(o, field) for o in outcomes) / len(outcomes)


def fewer(runs: dict[str, list[Outcome]], field: str) -> int:
    """In how many seeds SAM's ``field`` is below the base's."""
    return sum(getattr(s, field) < getattr(b, field) for b, s in zip(runs["SGD"], runs["SAM"], strict=True))


def verdict(runs: dict[str, list[Outcome]]) -> str:
    """Sentences from the numbers: in how many seeds SAM's minimum is flatter, its loss and its test error lower."""
    n, flatter, lower = len(runs["SGD"]), fewer(runs, "sharpness"), fewer(runs, "loss")
    sam, sgd = runs["SAM"], runs["SGD"]
    ratio = mean(sam, "sharpness") / mean(sgd, "sharpness")
    per_loss = ratio * mean(sgd, "loss") / mean(sam, "loss")
    higher = sum(s.error > b.error for b, s in zip(sgd, sam, strict=True))
    found = "found flatter minima" if flatter == n else "did not consistently find flatter minima"
    return (
        f"SAM {found} here: its top eigenvalue is lower in {flatter}/{n} seeds (the mean {ratio:.2f}x the base's). "
        f"Its training loss is lower in {lower}/{n} seeds; per unit of training loss (mean eigenvalue / mean loss) "
        f"its eigenvalue is {per_loss:.2f}x the base's. Its test error is lower in {fewer(runs, 'error')}/{n} seeds "
        f"and higher in {higher}/{n} (mean {mean(sam, 'error'):.3f} vs {mean(sgd, 'error'):.3f})."
    )


def figure_title(runs: dict[str, list[Outcome]]) -> str:
    """The figure's title: the setup and, measured, the mean eigenvalue ratio and the mean test errors."""
    sam, sgd = runs["SAM"], runs["SGD"]
    return (
        f"SAM (rho = {RHO}) vs SGD + momentum on {SUBSET} digits, {len(sgd)} seeds: top eigenvalue lower in "
        f"{fewer(runs, 'sharpness')}/{len(sgd)} seeds (mean {mean(sam, 'sharpness') / mean(sgd, 'sharpness'):.2f}x),"
        f"\nmean test error {mean(sam, 'error'):.3f} (SAM) vs {mean(sgd, 'error'):.3f} (SGD)"
    )


def sharpness_table(folder: Path) -> tuple[dict[str, list[Outcome]], Path, dict[str, str]]:
    """Run :func:`compare` on digits; write ``sharpness.md`` (a row per method and seed, then the means)."""
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset

    data = load_dataset(DigitsData(name="digits"))
    x, y = data.x_train[:SUBSET].double(), data.y_train[:SUBSET]
    runs = compare(x, y, data.x_test.double(), data.y_test)
    rows: list[tuple[Any, ...]] = [
        (m, seed, f"{o.loss:.3g}", o.error, f"{o.sharpness:.3g}")
        for m in METHODS
        for seed, o in zip(SEEDS, runs[m], strict=True)
    ]
    rows += [
        (m, "mean", f"{mean(runs[m], 'loss'):.3g}", mean(runs[m], "error"), f"{mean(runs[m], 'sharpness'):.3g}")
        for m in METHODS
    ]
    note = (
        f"\nMLP 64-{HIDDEN}-10 (tanh, float64) on the first {SUBSET} training digits, {STEPS} steps of mini-batches "
        f"of {BATCH}; SGD: lr {LR}, momentum {MOMENTUM}; SAM: the same SGD inside SAM with rho = {RHO} (two "
        f"gradients a step); the seed sets the initialization and the batches, the same for both. Test error on the "
        f"{len(data.y_test)} test digits; top eigenvalue of the Hessian of the training loss on the {SUBSET} "
        "(Lanczos). "
        f"{verdict(runs)}\n"
    )
    headers = ("optimizer", "seed", "training loss", "test error", "top Hessian eigenvalue")
    title = f"SAM (rho = {RHO}) vs SGD + momentum, {SUBSET} digits"
    table = write_table(folder / "sharpness.md", headers, rows, title=title, digits={"test error": 3}, append=note)
    numbers = {
        f"SAM / SGD {label} (mean of {len(SEEDS)} seeds)": f"{mean(runs['SAM'], f):.3g} / {mean(runs['SGD'], f):.3g}"
        for label, f in (("top Hessian eigenvalue", "sharpness"), ("test error", "error"), ("training loss", "loss"))
    }
    numbers["SAM flatter (seeds)"] = f"{fewer(runs, 'sharpness')}/{len(SEEDS)}"
    return runs, table, numbers
