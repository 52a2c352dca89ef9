"""Plateaus and saddle points (Goodfellow et al. 2016, sec. 8.2.3): where the loss and the gradient both stall.

Near a saddle point or on a plateau the gradient is tiny and the loss barely moves, so gradient descent crawls;
it looks like convergence but may not be a minimum. :class:`PlateauMonitor` flags such stretches of training
and, given a smallest-Hessian-eigenvalue estimate, tells a saddle (``lambda_min < 0``: a direction of descent
remains) from a flat minimum.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from regopt.diagnostics.gradients import global_grad_norm
from regopt.monitor import Monitor

__all__ = ["PlateauEvent", "PlateauMonitor"]


class PlateauEvent(NamedTuple):
    """A stretch of training from step ``start`` to step ``end`` where loss and gradient stalled."""

    start: int
    end: int
    start_loss: float  # the loss at step `start`
    loss: float  # the loss at step `end`
    grad_norm: float  # the largest gradient norm within the event
    min_eigenvalue: float | None  # lambda_min when the plateau was entered, if a function was given

    @property
    def saddle(self) -> bool | None:
        """``True`` for a saddle (``lambda_min < 0``), ``False`` for a flat region, ``None`` if unknown."""
        return None if self.min_eigenvalue is None else self.min_eigenvalue < 0

    def describe(self, *, ongoing: bool = False) -> str:
        """One line: ``"plateau from step 200 to 450: loss changed 0.1%, gradient norm 2e-4 (...)"``."""
        change = abs(self.loss - self.start_loss)
        if self.start_loss != 0 and change <= abs(self.start_loss):  # a percentage says something
            changed = f"loss changed {100 * change / abs(self.start_loss):.2g}%"
        else:  # near zero loss (e.g. at a saddle of x^2 - y^2) the absolute change is the measure
            changed = f"loss changed by {change:.2g}"
        span = f"from step {self.start} to {self.end}" + (" (ongoing)" if ongoing else "")
        line = f"plateau {span}: {changed}, gradient norm {self.grad_norm:.2g} "
        if self.min_eigenvalue is None:
            return line + "(a saddle point or flat region; check the smallest Hessian eigenvalue)"
        if self.min_eigenvalue < 0:
            return line + (
                f"(saddle: lambda_min = {self.min_eigenvalue:.2g} < 0; a descent direction remains, "
                "noise or momentum helps escape)"
            )
        return line + f"(flat minimum / plateau: lambda_min = {self.min_eigenvalue:.2g} >= 0)"


class PlateauMonitor(Monitor):
    """Flag plateaus and possible saddle points: a window of steps where neither the loss nor the gradient moves.

    After each step, :meth:`after_step` reads the global gradient norm from ``p.grad`` (as
    :func:`~regopt.diagnostics.gradients.gradient_norms` does; regopt's Trainer calls monitors before the next
    ``zero_grad``) and keeps the last ``window`` losses and gradient norms. The window is *flat* when both::

        |mean(second half of losses) - mean(first half)| <= loss_tol * |mean(first half)| + loss_atol
        max(gradient norms in the window) <= grad_tol

    (half-window means smooth minibatch noise; ``loss_atol`` covers losses near zero, where a relative change
    means nothing -- e.g. at a saddle of ``x^2 - y^2``). The first flat window opens a :class:`PlateauEvent`
    starting at the window's first step; it extends while windows stay flat and ends at the last step of the
    last flat window. With ``min_eigenvalue_fn`` (e.g. a closure over
    :func:`regopt.diagnostics.curvature.min_eigenvalue` on a fixed batch), the smallest Hessian eigenvalue is
    computed once when a plateau is entered: negative means a saddle, otherwise a flat minimum or plateau.
    Events are in :attr:`events` and described in :attr:`messages`; the monitor never stops training.

    Note that a minibatch gradient carries sampling noise, so its norm stays above zero even at a minimum; set
    ``grad_tol`` above the noise level (or use full-batch steps) for the gradient test to bite.

    Args:
        model: the model whose gradients are read.
        window: steps per judged window, ``>= 2`` (default ``100``).
        loss_tol: largest relative loss change of a flat window, ``>= 0`` (default ``1e-3``).
        grad_tol: largest gradient norm of a flat window, ``> 0`` (default ``1e-3``).
        loss_atol: absolute slack added to the loss test, ``>= 0`` (default ``0.0``).
        min_eigenvalue_fn: returns the smallest Hessian eigenvalue at the current parameters, or ``None``.

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(1, 1, bias=False)
        >>> monitor = PlateauMonitor(model, window=10, min_eigenvalue_fn=lambda: -0.5)
        >>> for step in range(1, 31):
        ...     model.weight.grad = torch.full((1, 1), 1e-5 if step > 10 else 1.0)
        ...     monitor.after_step(step, torch.tensor(1.0 if step > 10 else 2.0 - step / 10))
        >>> [(e.start, e.end, e.saddle) for e in monitor.events]
        [(11, 30, True)]

    References:
        Dauphin, Y. et al. (2014). Identifying and attacking the saddle point problem in high-dimensional
        non-convex optimization. NeurIPS.
        Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.2.3.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        window: int = 100,
        loss_tol: float = 1e-3,
        grad_tol: float = 1e-3,
        loss_atol: float = 0.0,
        min_eigenvalue_fn: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not (isinstance(window, int) and not isinstance(window, bool)) or window < 2:
            raise ValueError(f"window must be an integer >= 2, got {window!r}")
        _check_real("loss_tol", loss_tol, positive=False)
        _check_real("grad_tol", grad_tol, positive=True)
        _check_real("loss_atol", loss_atol, positive=False)
        if min_eigenvalue_fn is not None and not callable(min_eigenvalue_fn):
            raise ValueError(f"min_eigenvalue_fn must be a callable returning a float, got {min_eigenvalue_fn!r}")
        self.model, self.window = model, window
        self.loss_tol, self.grad_tol, self.loss_atol = float(loss_tol), float(grad_tol), float(loss_atol)
        self.min_eigenvalue_fn = min_eigenvalue_fn
        self._steps: deque[int] = deque(maxlen=window)
        self._losses: deque[float] = deque(maxlen=window)
        self._grad_norms: deque[float] = deque(maxlen=window)
        self.events: list[PlateauEvent] = []
        self.in_plateau = False  # whether the last event is still open

    # ------------------------------------------------------------------------------------------- hooks
    def after_step(self, step: int, loss: Tensor | float) -> None:
        """Record this step's loss and gradient norm, then open, extend or close a plateau event."""
        grad_norm = global_grad_norm(self.model)
        if grad_norm is None:
            raise RuntimeError(
                "PlateauMonitor found no gradient in the model's parameters: call after_step after backward and "
                "the optimizer step, before zero_grad"
            )
        if isinstance(loss, Tensor):
            loss_value, norm = torch.stack([loss.detach().reshape(-1).sum().to(grad_norm), grad_norm]).tolist()
        else:
            loss_value, norm = float(loss), grad_norm.item()
        self._record(step, loss_value, norm)

    def _record(self, step: int, loss: float, grad_norm: float) -> None:
        self._steps.append(step)
        self._losses.append(loss)
        self._grad_norms.append(grad_norm)
        if len(self._losses) < self.window or not self._flat():
            self.in_plateau = False
            return
        largest = max(self._grad_norms)
        if self.in_plateau:
            last = self.events[-1]
            self.events[-1] = last._replace(end=step, loss=loss, grad_norm=max(last.grad_norm, largest))
            return
        start_index = 0
        if self.events:  # never reach back into the previous event
            start_index = next((i for i, s in enumerate(self._steps) if s > self.events[-1].end), len(self._steps) - 1)
        eigenvalue = float(self.min_eigenvalue_fn()) if self.min_eigenvalue_fn is not None else None
        grad_max = max(list(self._grad_norms)[start_index:])
        start, start_loss = self._steps[start_index], self._losses[start_index]
        self.events.append(PlateauEvent(start, step, start_loss, loss, grad_max, eigenvalue))
        self.in_plateau = True

    def _flat(self) -> bool:
        """Whether the current full window passes both the loss test and the gradient test."""
        losses, half = list(self._losses), self.window // 2
        first = sum(losses[:half]) / half
        second = sum(losses[-half:]) / half
        if not (math.isfinite(first) and math.isfinite(second)):
            return False
        loss_flat = abs(second - first) <= self.loss_tol * abs(first) + self.loss_atol
        return loss_flat and max(self._grad_norms) <= self.grad_tol  # NaN compares False

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """Never stops: this monitor reports (see :attr:`events` and :attr:`messages`)."""
        return False, ""

    @property
    def messages(self) -> list[str]:
        """One line per event, e.g. ``"plateau from step 200 to 450: loss changed 0.1%, gradient norm 2e-4 ..."``."""
        last = len(self.events) - 1
        return [event.describe(ongoing=self.in_plateau and i == last) for i, event in enumerate(self.events)]

    # -------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The current window and the events, as tensors and plain numbers (safe for ``weights_only`` loads)."""
        events = [[*e[:5], math.nan if e.min_eigenvalue is None else e.min_eigenvalue] for e in self.events]
        return {
            "window": self.window,
            "steps": torch.tensor(list(self._steps), dtype=torch.int64),
            "losses": torch.tensor(list(self._losses), dtype=torch.float64),
            "grad_norms": torch.tensor(list(self._grad_norms), dtype=torch.float64),
            "events": torch.tensor(events, dtype=torch.float64).reshape(-1, 6),
            "has_eigenvalue": torch.tensor([e.min_eigenvalue is not None for e in self.events], dtype=torch.bool),
            "in_plateau": self.in_plateau,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, for a monitor with the same ``window``."""
        if state["window"] != self.window:
            raise ValueError(f"PlateauMonitor state has window={state['window']!r}, this monitor {self.window!r}")
        self._steps = deque((int(s) for s in state["steps"].tolist()), maxlen=self.window)
        self._losses = deque(state["losses"].tolist(), maxlen=self.window)
        self._grad_norms = deque(state["grad_norms"].tolist(), maxlen=self.window)
        self.events = [
            PlateauEvent(int(s), int(e), sl, lo, g, eig if has else None)
            for (s, e, sl, lo, g, eig), has in zip(
                state["events"].tolist(), state["has_eigenvalue"].tolist(), strict=True
            )
        ]
        self.in_plateau = bool(state["in_plateau"])


def _check_real(name: str, value: object, *, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
