"""Stop at the first NaN or Inf (Goodfellow et al. 2016, sec. 8.2): the visible end of exploding gradients.

A learning rate too large for the curvature (ill-conditioning), or a cliff met without clipping, makes the
parameters grow step after step until they overflow; from then on every loss and gradient is NaN and training is
silently wasted. :class:`NonFiniteGuard` checks the loss, every gradient and every parameter after each optimizer
step and raises :class:`TrainingDiverged` in the very step where a non-finite value first appears, naming the
first layer affected, the loss, the learning rate and what to do.

Contract with a training loop: the exception propagates out of ``after_step``, so anything the loop would do
after the monitors of that step -- in regopt's Trainer, writing the step's checkpoint -- does not happen, and the
last checkpoint on disk (the last good state) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from regopt.monitor import Monitor

__all__ = ["NonFiniteGuard", "TrainingDiverged"]

_ADVICE = "Lower the learning rate, clip gradients (train.clip_grad_norm), or check the inputs for NaN."


class TrainingDiverged(FloatingPointError):
    """Training produced a NaN or Inf loss, gradient or parameter: it diverged (exploding gradients).

    Raised by :class:`NonFiniteGuard`. The attributes say where: ``step``, ``layer`` (the first named parameter,
    in model order, with a non-finite gradient or value; ``None`` if only the loss is), ``what`` (``"gradient"``,
    ``"value"`` or ``"gradient and value"``), ``loss``, ``lr`` and ``stable_lr`` (``None`` where unknown).
    """

    def __init__(
        self,
        message: str = "",
        *,
        step: int | None = None,
        layer: str | None = None,
        what: str | None = None,
        loss: float | None = None,
        lr: float | None = None,
        stable_lr: float | None = None,
    ) -> None:
        if not message:
            message = (
                "training diverged: a loss, gradient or parameter became NaN or Inf (exploding gradients, "
                f"often a learning rate too large for the curvature). {_ADVICE}"
            )
        super().__init__(message)
        self.step, self.layer, self.what = step, layer, what
        self.loss, self.lr, self.stable_lr = loss, lr, stable_lr


class NonFiniteGuard(Monitor):
    """Raise :class:`TrainingDiverged` at the first step whose loss, gradients or parameters are not finite.

    After each optimizer step, :meth:`after_step` takes the max-abs norm of every gradient and every parameter
    with one ``torch._foreach_norm(..., inf)`` call (the max-abs norm is NaN or Inf exactly when the tensor has
    a NaN or Inf, and cannot overflow as the L2 norm can) and checks them together with the loss in one host
    sync. Only when something is not finite does it look tensor by tensor for the first parameter affected.
    The gradients must still be in ``p.grad`` (regopt's Trainer runs monitors after the optimizer step, before
    the next ``zero_grad``).

    The message names the step, the first layer affected and whether its gradient or its value is non-finite,
    the loss, the learning rate (from ``lr_fn``), and the largest stable learning rate where ``stable_lr_fn``
    gives one, e.g.::

        training diverged at step 7: the gradient of '1.weight' is non-finite (first affected parameter in
        model order; 2 of 4 parameters affected); loss 0.4375; learning rate 0.5; largest stable lr ~0.021.
        Lower the learning rate, clip gradients (train.clip_grad_norm), or check the inputs for NaN.

    The exception propagates out of ``after_step`` before anything else of that step happens; regopt's Trainer
    writes the step's checkpoint only after its monitors, so the last good checkpoint is kept.

    Args:
        model: the model whose gradients and parameters are checked.
        lr_fn: returns the current learning rate, e.g. ``lambda: optimizer.param_groups[0]["lr"]``.
        stable_lr_fn: returns an estimate of the largest stable learning rate, or ``None`` when it has none
            (e.g. from the ill-conditioning monitor: ``2 / lambda_max`` for gradient descent).

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(1, 1)
        >>> guard = NonFiniteGuard(model, lr_fn=lambda: 0.5)
        >>> guard.after_step(1, torch.tensor(1.0))  # finite: nothing happens
        >>> try:
        ...     guard.after_step(2, torch.tensor(float("nan")))
        ... except TrainingDiverged as err:
        ...     print(err.step, err.layer, err.lr)
        2 None 0.5
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr_fn: Callable[[], float] | None = None,
        stable_lr_fn: Callable[[], float | None] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if lr_fn is not None and not callable(lr_fn):
            raise ValueError(f"lr_fn must be a callable returning the learning rate, got {lr_fn!r}")
        if stable_lr_fn is not None and not callable(stable_lr_fn):
            raise ValueError(f"stable_lr_fn must be a callable returning a learning rate or None, got {stable_lr_fn!r}")
        self.lr_fn, self.stable_lr_fn = lr_fn, stable_lr_fn
        self.watch(model)

    def watch(self, model: nn.Module) -> None:
        """Check ``model``'s parameters from now on (a loop that replaces its model, e.g. greedy pretraining)."""
        self.model = model
        # the max-abs norm has no value on an empty tensor, and an empty tensor cannot hold a NaN
        self._named = [(name, p) for name, p in model.named_parameters() if p.numel() > 0]
        self._params = [p for _, p in self._named]

    def after_step(self, step: int, loss: Tensor | float) -> None:
        """Check the loss, every gradient and every parameter; raise :class:`TrainingDiverged` if any is not finite."""
        grads = [p.grad for p in self._params if p.grad is not None]
        tensors = [*grads, *self._params]
        if isinstance(loss, Tensor):
            loss_value = loss.detach().reshape(-1).sum()
            checks = [*torch._foreach_norm(tensors, math.inf), loss_value] if tensors else [loss_value]
            if _all_finite(checks):
                return
        elif math.isfinite(loss) and (not tensors or _all_finite(torch._foreach_norm(tensors, math.inf))):
            return
        self._raise(step, loss)

    def _raise(self, step: int, loss: Tensor | float) -> None:
        loss_value = float(loss.detach().reshape(-1).sum()) if isinstance(loss, Tensor) else float(loss)
        affected: list[tuple[str, str]] = []
        for name, p in self._named:
            bad_grad = p.grad is not None and not bool(torch.isfinite(p.grad).all())
            bad_value = not bool(torch.isfinite(p.detach()).all())
            if bad_grad or bad_value:
                affected.append(
                    (name, "gradient and value" if bad_grad and bad_value else "gradient" if bad_grad else "value")
                )
        lr = float(self.lr_fn()) if self.lr_fn is not None else None
        stable = self.stable_lr_fn() if self.stable_lr_fn is not None else None
        stable_lr = float(stable) if stable is not None else None

        if affected:
            layer, what = affected[0]
            verb = "are" if what == "gradient and value" else "is"
            where = (
                f"the {what} of {layer!r} {verb} non-finite (first affected parameter in model order; "
                f"{len(affected)} of {len(self._named)} parameters affected)"
            )
        else:
            layer, what = None, None
            where = "the loss is non-finite (gradients and parameters are still finite)"
        parts = [f"training diverged at step {step}: {where}", f"loss {loss_value:.4g}"]
        parts.append(f"learning rate {lr:.4g}" if lr is not None else "learning rate unknown (pass lr_fn)")
        if stable_lr is not None:
            parts.append(f"largest stable lr ~{stable_lr:.2g}")
        message = (
            "; ".join(parts) + ". This is the sign of exploding gradients or ill-conditioning: a step too large for "
            f"the curvature (or off a cliff) threw the parameters away. {_ADVICE}"
        )
        raise TrainingDiverged(
            message, step=step, layer=layer, what=what, loss=loss_value, lr=lr, stable_lr=stable_lr
        ) from None

    def state_dict(self) -> dict[str, Any]:
        """Stateless: the guard decides from the current step alone."""
        return {}

    def load_state_dict(self, state: Any) -> None:
        """Nothing to restore."""


def _all_finite(values: list[Tensor] | tuple[Tensor, ...]) -> bool:
    """Whether every scalar in ``values`` is finite, in one host sync (scalars gathered on one device)."""
    try:
        stacked = torch.stack(list(values))
    except RuntimeError:  # scalars on several devices
        stacked = torch.stack([v.to(values[0].device) for v in values])
    return bool(torch.isfinite(stacked).all())
