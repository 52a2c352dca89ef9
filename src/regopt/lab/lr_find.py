r"""An LR finder that also asks the curvature: Smith's range test beside the seed's stable learning rates.

**The range test** (Smith 2017, sec. 3.3; fastai's ``lr_find``): from the trainer's current weights, take
``steps`` optimizer steps on the training batches the run would draw next, through the configured optimizer and
:meth:`~regopt.lab.trainer.Trainer.train_step` (batch transforms, penalties, objective terms, clipping and
post-step actions apply as in training; the monitors watch training, not this sweep, and are detached), with the
lr of every parameter group set before step ``i`` to

    lr_i = lr_min * (lr_max / lr_min) ** (i / (steps - 1))        (an exponential sweep)

The task loss of each step is smoothed by a bias-corrected EMA, ``s_i = a_i / (1 - beta^(i+1))`` with
``a_i = beta a_{i-1} + (1 - beta) loss_i`` and ``beta = 0.98``, and the sweep stops when a loss is not finite or
``s_i > 4 min_{j<i} s_j``: the loss has diverged. The suggestion is the lr of the lowest smoothed loss divided by
10 (fastai's original rule, ``min_loss / 10``): one step back from where the loss turns upward. The steepest
descent of the smoothed loss (fastai's later ``steep``) was not chosen: on a short sweep the EMA's start, which
averages only a few batches, is where the finite-difference slope is steepest as often as not.

Afterwards the weights, the optimizer's state and lrs, the schedule, every stateful hook, the position, the batch
order and every RNG are restored from a deep copy of :meth:`Trainer.state_dict <regopt.lab.trainer.Trainer>`, so a
run trained after ``find_lr`` is bit for bit the run trained without it.

**The curvature rates** (Goodfellow et al. 2016, sec. 8.2.1; :mod:`regopt.diagnostics.criterion`), from the same
weights, on a fixed probe batch (the first ``probe`` training examples, in training mode: one dropout mask and
the batch's own BatchNorm statistics, kept for every Hessian-vector product), for the objective the trainer
minimizes (task loss + penalties + objective terms; no batch transforms):

- ``2 g'g / g'Hg``: the largest lr for which a gradient step still lowers the loss to second order (infinite when
  ``g'Hg <= 0``: no curvature limit along g);
- ``2 / lambda_max``: the largest lr for which gradient descent is stable in every direction (Lanczos).

Since ``g'Hg / g'g <= lambda_max``, the first is never below the second.

Where the range test stops against ``2 / lambda_max`` depends on its resolution and its noise (linear regression,
condition number ~30, plain SGD; ``tests/lab/test_lr_find.py``): with batches of 64 the stop lies at 1.5-1.7 x
``2 / lambda_max`` over 75 steps per decade (8 seeds), 2.9 x at the default 25 per decade; with the full batch,
5 x, since a deterministic sweep first damps the stiffest direction to nothing and it must regrow from rounding
before the loss shows the instability. The curvature measures the edge directly. Both are the stable rates of plain SGD
steps; an optimizer with momentum or per-parameter scaling (Adam, RMSProp, ...) has other limits, and there the
range test, which ran the configured optimizer, is the rate to pick (:func:`regopt.lab.lr_find_report.recommend`).

References:
    Smith, L. N. (2017). Cyclical learning rates for training neural networks. WACV. arXiv:1506.01186.
    Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.2.1 (ill-conditioning).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from regopt.diagnostics import HessianOperator, step_curvature, top_eigenvalues
from regopt.lab.objective import TrainingBatch, objective
from regopt.lab.trainer import Trainer

__all__ = [
    "CurvatureRates",
    "LRFindError",
    "LRFindResult",
    "check_sweep",
    "curvature_rates",
    "find_lr",
    "lr_sweep",
    "restored",
    "trainer_curvature_rates",
]

BETA = 0.98
"""Smoothing of the loss (Smith's and fastai's)."""
DIVERGENCE = 4.0
"""The sweep stops once the smoothed loss exceeds this multiple of its lowest value so far."""
SUGGESTION_FACTOR = 10.0
"""The suggestion is the lr of the lowest smoothed loss divided by this."""
MIN_STEPS = 10


class LRFindError(ValueError):
    """A range test asked for with unusable bounds or length; the message is one line."""


@dataclass
class LRFindResult:
    """What a range test measured: one entry per step taken, in order."""

    lrs: list[float]
    losses: list[float]
    """The task loss of each step (before that step's update)."""
    smoothed: list[float]
    """The bias-corrected EMA of ``losses``."""
    stop_reason: str
    """``"diverged"`` (smoothed loss above 4x its best), ``"non-finite loss"`` or ``"reached lr_max"``."""
    min_loss_lr: float
    """The lr of the lowest smoothed loss: where the loss turns upward."""
    suggestion: float
    """``min_loss_lr / 10``."""

    @property
    def diverged(self) -> bool:
        """Whether the sweep ended because the loss diverged (not at ``lr_max``)."""
        return self.stop_reason != "reached lr_max"

    @property
    def stop_lr(self) -> float:
        """The lr of the last step: where the divergence was detected, or ``lr_max``."""
        return self.lrs[-1]


@dataclass(frozen=True)
class CurvatureRates:
    """The stable learning rates of plain gradient steps at one point (see the module docstring)."""

    along_gradient: float
    """``2 g'g / g'Hg`` (``inf`` if ``g'Hg <= 0``, ``nan`` if a product overflowed)."""
    any_direction: float
    """``2 / lambda_max`` (``inf`` if ``lambda_max <= 0``)."""
    lambda_max: float
    """The Hessian's largest eigenvalue (Lanczos)."""
    gHg: float
    """``g'Hg`` in float64."""
    gg: float
    """``g'g`` in float64."""
    loss: float
    """The objective on the probe batch."""
    examples: int
    """The probe batch's size."""
    hessian_vector_products: int
    """What the two rates cost, in Hessian-vector products."""


def lr_sweep(lr_min: float, lr_max: float, steps: int) -> list[float]:
    """The exponential sweep ``lr_min * (lr_max / lr_min) ** (i / (steps - 1))``, i = 0..steps-1."""
    check_sweep(lr_min, lr_max, steps)
    ratio = lr_max / lr_min
    return [lr_min * ratio ** (i / (steps - 1)) for i in range(steps)]


def check_sweep(lr_min: float, lr_max: float, steps: int) -> None:
    """:class:`LRFindError` unless ``0 < lr_min < lr_max`` (both finite) and ``steps >= 10``."""
    if not (math.isfinite(lr_min) and lr_min > 0):
        raise LRFindError(f"--min: {lr_min} is not a learning rate > 0")
    if not (math.isfinite(lr_max) and lr_max > lr_min):
        raise LRFindError(f"--max: {lr_max} must be a finite learning rate above --min ({lr_min})")
    if steps < MIN_STEPS:
        raise LRFindError(f"--steps: {steps} is too short a sweep; take at least {MIN_STEPS}")


@contextlib.contextmanager
def restored(trainer: Trainer) -> Iterator[None]:
    """Run the body with the trainer's monitors detached, then put back everything :meth:`Trainer.state_dict`
    holds (weights, optimizer state and lrs, schedule, hook states, position, batch order, every RNG), the
    parameters' gradients and the model's train/eval mode, bit for bit."""
    snapshot = copy.deepcopy(trainer.state_dict())
    params = list(trainer.model.parameters())
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    training, monitors = trainer.model.training, trainer.monitors
    trainer.monitors = []
    try:
        yield
    finally:
        trainer.monitors = monitors
        trainer.load_state_dict(snapshot)
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
        trainer.model.train(training)


def _batches(trainer: Trainer) -> Iterator[tuple[Tensor, Tensor]]:
    """The training batches the run would draw next, epoch after epoch (advances the batch order)."""
    order, data = trainer.batch_order, trainer.data
    epoch, skip = trainer.epoch, trainer.batch
    while True:
        drawn = 0
        for index in order.indices(epoch, skip, data.x_train.device):
            drawn += 1
            yield data.x_train[index], data.y_train[index]
        if not drawn and not skip:
            raise LRFindError("data: no training batch to sweep over")
        order.next_epoch()
        epoch, skip = epoch + 1, 0


def find_lr(
    trainer: Trainer,
    *,
    steps: int = 200,
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    beta: float = BETA,
    divergence: float = DIVERGENCE,
) -> LRFindResult:
    """Smith's range test from the trainer's current weights; everything is restored afterwards.

    Args:
        trainer: the trainer whose model, optimizer, data and objective are swept (``experiment.trainer``).
        steps: optimizer steps of the full sweep (at least 10); it may stop earlier at divergence.
        lr_min, lr_max: the sweep's first and last learning rate.
        beta: the EMA's smoothing of the loss.
        divergence: stop once the smoothed loss exceeds this multiple of its lowest value.

    Returns:
        An :class:`LRFindResult`; raises :class:`LRFindError` for unusable bounds.
    """
    lrs = lr_sweep(lr_min, lr_max, steps)
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason, average, best = "reached lr_max", 0.0, math.inf
    with restored(trainer):
        trainer.model.train()
        for i, (lr, (x, y)) in enumerate(zip(lrs, _batches(trainer), strict=False)):
            for group in trainer.optimizer.param_groups:
                group["lr"] = lr
            loss = float(trainer.train_step(x, y))
            average = beta * average + (1 - beta) * loss
            smooth = average / (1 - beta ** (i + 1))
            losses.append(loss)
            smoothed.append(smooth)
            if not math.isfinite(loss) or not math.isfinite(smooth):
                stop_reason = "non-finite loss"
                break
            if smooth > divergence * best:
                stop_reason = "diverged"
                break
            best = min(best, smooth)
    taken = lrs[: len(losses)]
    judged = smoothed if stop_reason == "reached lr_max" else smoothed[:-1]  # not the step that diverged
    lowest = min(range(len(judged)), key=judged.__getitem__) if judged else 0
    return LRFindResult(
        lrs=taken,
        losses=losses,
        smoothed=smoothed,
        stop_reason=stop_reason,
        min_loss_lr=taken[lowest],
        suggestion=taken[lowest] / SUGGESTION_FACTOR,
    )


def curvature_rates(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    seed: int = 0,
    iterations: int = 100,
    tol: float = 1e-5,
) -> CurvatureRates:
    """``2 g'g / g'Hg`` and ``2 / lambda_max`` of ``loss_fn(model(x), y)`` at the model's current weights.

    The gradient g and ``Hg`` come from :class:`~regopt.diagnostics.HessianOperator` (double backward on one kept
    graph, in the model's current mode), the dot products in float64 (:func:`~regopt.diagnostics.step_curvature`),
    ``lambda_max`` from Lanczos (:func:`~regopt.diagnostics.top_eigenvalues`, relative residual ``tol``).
    """
    op = HessianOperator(model, loss_fn, x, y)
    g = op.gradient()
    row = step_curvature(g, op.matvec(g), 0.0)
    lambda_max = float(top_eigenvalues(op, k=1, iterations=min(iterations, op.dim), tol=tol, seed=seed)[0])
    return CurvatureRates(
        along_gradient=row["stable_lr"],
        any_direction=2 / lambda_max if lambda_max > 0 else math.inf,
        lambda_max=lambda_max,
        gHg=row["gHg"],
        gg=row["gg"],
        loss=op.loss(),
        examples=len(x),
        hessian_vector_products=op.num_products,
    )


def trainer_curvature_rates(trainer: Trainer, *, probe: int = 512, seed: int = 0) -> CurvatureRates:
    """:func:`curvature_rates` of the trainer's objective (task loss, penalties, objective terms) on its first
    ``probe`` training examples, in training mode; the trainer is left as it was (:func:`restored`)."""
    if probe < 1:
        raise LRFindError(f"--probe: {probe} examples; the curvature needs at least 1")
    x, y = trainer.data.x_train[:probe], trainer.data.y_train[:probe]
    model, task_loss = trainer.model, trainer.loss_fn

    def objective_of_output(output: Tensor, target: Tensor) -> Tensor:
        batch = TrainingBatch(model, x, target, output, task_loss(output, target))
        return objective(batch, trainer.penalties, trainer.terms)

    with restored(trainer):
        model.train()
        return curvature_rates(model, objective_of_output, x, y, seed=seed)
