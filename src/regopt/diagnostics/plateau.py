"""Plateaus and saddle points (Goodfellow et al. 2016, sec. 8.2.3): where the loss and the gradient both stall.

Near a saddle point or on a plateau the gradient is tiny and the loss barely moves, so gradient descent crawls;
it looks like convergence but may not be a minimum. :class:`PlateauMonitor` flags such stretches of training
and, given a smallest-Hessian-eigenvalue estimate, tells a saddle (``lambda_min < 0``: a direction of descent
remains) from a flat minimum.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from regopt._checks import check_int, check_real
from regopt.diagnostics.alarms import AlarmLog
from regopt.diagnostics.norms import global_grad_norm
from regopt.monitor import Monitor, MonitorReport

__all__ = ["PlateauEvent", "PlateauMonitor"]

_MEDIAN_ABS_DIFF = 0.6745 * math.sqrt(2)  # median |x - y| / sigma for independent N(0, sigma^2) draws
_STAY = 1.5  # inside a plateau, a window must move by 1.5 noise_z standard errors to end it


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
    """Flag plateaus and possible saddle points: a window of steps over which the loss does not move.

    After each step, :meth:`after_step` keeps the last ``window`` losses and gradient norms (the raw norm, read
    in :meth:`after_backward` before any clipping where the loop calls it, else from ``p.grad``). The window is
    *flat* when its loss made no progress that can be told from the loss's own noise::

        d     = mean(first half of losses) - mean(second half)          # the progress over the window
        sigma = median(|l[t+1] - l[t]|) / (0.6745 * sqrt(2))            # the loss's step-to-step noise
        se    = sigma * sqrt(2 / half)                                   # the noise of d
        noise_z * se <= max_noise * |mean(first half)| + loss_atol       # the noise lets it tell, and
        |d| <= max(loss_tol * |mean(first half)| + loss_atol, noise_z * se)  # it moved no more than that

    i.e. the loss moved by less than ``loss_tol`` (relative), or by no more than its minibatch noise explains
    (inside a plateau, ``1.5 * noise_z`` standard errors, so that noise alone does not split one plateau into
    many), provided that noise is small enough to reveal a move of ``max_noise`` (relative). A loss noisier than
    that (a small loss late in training, e.g. 0.03 +- 0.04 a step) is not judged: its window cannot tell a
    plateau from progress, and a warning would be a guess.

    Half-window means smooth the noise; the median of successive differences measures it without counting a
    trend or a single jump as noise (Gaussian noise of standard deviation sigma gives differences whose
    absolute median is ``0.6745 * sqrt(2) * sigma``). ``loss_atol`` covers losses near zero, where a relative
    change means nothing (e.g. at a saddle of ``x^2 - y^2``). A loss that falls steadily by more than its noise
    is not flat, however small its gradient; a loss that sits still (a classifier at chance level,
    ``ln 10 = 2.3026``) is flat, however large its minibatch gradient. With ``grad_tol`` the window must also
    have every gradient norm ``<= grad_tol`` (for full-batch training, where the gradient itself vanishes).

    The first flat window opens a :class:`PlateauEvent` starting at the window's first step; it extends while
    windows stay flat and ends at the last step of the last flat window (a flat window within ``window`` steps
    of an event's end continues that event). Opening one raises an alarm (logged on
    ``"regopt.diagnostics"`` at ``WARNING``, see :mod:`~regopt.diagnostics.alarms`) with advice: still near
    the loss of the first steps means the model is stuck (learning rate too large -- dead units -- or too
    small, or the initialization); well below it, training may simply have converged. With
    ``min_eigenvalue_fn`` (e.g. a closure over :func:`regopt.diagnostics.curvature.min_eigenvalue` on a fixed
    batch), the smallest Hessian eigenvalue is computed once when a plateau is entered: negative means a
    saddle, otherwise a flat minimum or plateau. Events are in :attr:`events` and described in
    :attr:`messages`; the monitor never stops training.

    Args:
        model: the model whose gradients are read.
        window: steps per judged window, ``>= 2`` (default ``100``).
        loss_tol: relative loss change of a flat window, whatever the noise, ``>= 0`` (default ``1e-3``).
        grad_tol: if given, the largest gradient norm of a flat window, ``> 0`` (default ``None``: the gradient
            is reported, not judged; a minibatch gradient's norm stays well above zero even at a minimum).
        loss_atol: absolute slack added to the loss test, ``>= 0`` (default ``0.0``).
        noise_z: how many standard errors of its noise a change may be and still count as none, ``>= 0``
            (default ``2.0``; ``0`` judges by ``loss_tol`` alone).
        max_noise: the largest relative change the noise may explain for the noise test to be used, ``>= 0``
            (default ``0.02``: 2% of the loss).
        min_eigenvalue_fn: returns the smallest Hessian eigenvalue at the current parameters, or ``None``.
        alarm_every: at most one logged alarm per this many steps (default ``100``).

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(1, 1, bias=False)
        >>> monitor = PlateauMonitor(model, window=10, min_eigenvalue_fn=lambda: -0.5)
        >>> for step in range(1, 31):
        ...     model.weight.grad = torch.full((1, 1), 0.1 if step > 10 else 1.0)
        ...     monitor.after_step(step, torch.tensor(1.0 if step > 10 else 2.0 - step / 20))
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
        grad_tol: float | None = None,
        loss_atol: float = 0.0,
        noise_z: float = 2.0,
        max_noise: float = 0.02,
        min_eigenvalue_fn: Callable[[], float] | None = None,
        alarm_every: int = 100,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        check_int("window", window, 2)
        check_real("loss_tol", loss_tol, positive=False)
        if grad_tol is not None:
            check_real("grad_tol", grad_tol, positive=True)
        check_real("loss_atol", loss_atol, positive=False)
        check_real("noise_z", noise_z, positive=False)
        check_real("max_noise", max_noise, positive=False)
        if min_eigenvalue_fn is not None and not callable(min_eigenvalue_fn):
            raise ValueError(f"min_eigenvalue_fn must be a callable returning a float, got {min_eigenvalue_fn!r}")
        self.model, self.window = model, window
        self.loss_tol, self.loss_atol, self.noise_z = float(loss_tol), float(loss_atol), float(noise_z)
        self.max_noise = float(max_noise)
        self.grad_tol = None if grad_tol is None else float(grad_tol)
        self.min_eigenvalue_fn = min_eigenvalue_fn
        self.alarm_log = AlarmLog("plateau", every=alarm_every)
        self._steps: deque[int] = deque(maxlen=window)
        self._losses: deque[float] = deque(maxlen=window)
        self._grad_norms: deque[float] = deque(maxlen=window)
        self._raw: tuple[int, Tensor] | None = None  # (step, raw gradient norm) from after_backward
        self.start_loss: float | None = None  # the mean loss of the first half window of training
        self.events: list[PlateauEvent] = []
        self.in_plateau = False  # whether the last event is still open

    # ------------------------------------------------------------------------------------------- hooks
    def after_backward(self, step: int) -> None:
        """Read the raw gradient norm of this step, before the loop's gradient transforms (no host sync)."""
        norm = global_grad_norm(self.model)
        self._raw = None if norm is None else (step, norm)

    def after_step(self, step: int, loss: Tensor | float) -> None:
        """Record this step's loss and gradient norm, then open, extend or close a plateau event."""
        raw, self._raw = self._raw, None
        grad_norm = raw[1] if raw is not None and raw[0] == step else global_grad_norm(self.model)
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
        if self.start_loss is None and len(self._losses) == self.window:
            self.start_loss = sum(list(self._losses)[: self.window // 2]) / (self.window // 2)
        if len(self._losses) < self.window or not self._flat():
            self.in_plateau = False
            return
        largest = max(self._grad_norms)
        if self.events and (self.in_plateau or step - self.events[-1].end <= self.window):
            self.in_plateau = True  # one window that moved does not split a plateau: it continues, unannounced
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
        self.alarm_log.alarm(step, self._alarm_message(self.events[-1]))

    def _halves(self) -> tuple[float, float, int]:
        losses, half = list(self._losses), self.window // 2
        return sum(losses[:half]) / half, sum(losses[-half:]) / half, half

    def noise(self) -> float:
        """The loss's step-to-step noise over the current window: ``median(|l[t+1] - l[t]|) / (0.6745 sqrt 2)``."""
        losses = list(self._losses)
        if len(losses) < 2:
            return math.nan
        return statistics.median(abs(b - a) for a, b in itertools.pairwise(losses)) / _MEDIAN_ABS_DIFF

    def _flat(self) -> bool:
        """Whether the current full window passes the loss test (and the gradient test, with ``grad_tol``)."""
        first, second, half = self._halves()
        if not (math.isfinite(first) and math.isfinite(second)):
            return False
        if self.grad_tol is not None and not max(self._grad_norms) <= self.grad_tol:  # NaN compares False
            return False
        change, scale = abs(second - first), abs(first)
        if change > max(self.loss_tol, self.max_noise) * scale + self.loss_atol:
            return False  # moved more than any tolerance: no need to measure the noise
        z = self.noise_z * (_STAY if self.in_plateau else 1.0)  # hysteresis: noise alone does not end a plateau
        band = z * self.noise() * math.sqrt(2 / half)  # the change the noise alone explains
        if not band <= self.max_noise * scale + self.loss_atol:  # too noisy to tell (NaN compares False)
            return False
        return change <= max(self.loss_tol * scale + self.loss_atol, band)

    def _alarm_message(self, event: PlateauEvent) -> str:
        """One line: where, how flat, against the loss's noise and the start of training, and what to do."""
        first, second, _ = self._halves()
        change = (second - first) / abs(first) if first != 0 else math.nan
        noise = self.noise()
        grad = statistics.median(self._grad_norms)
        line = (
            f"plateau since step {event.start}: loss {event.loss:.4g} not improving over the last {self.window} "
            f"steps (changed {change:+.2%}, step-to-step noise {noise:.2g}), gradient norm ~{grad:.2g}"
        )
        if event.min_eigenvalue is not None:
            kind = "saddle" if event.min_eigenvalue < 0 else "flat region"
            line += f" ({kind}: lambda_min = {event.min_eigenvalue:.2g})"
        start = self.start_loss
        if start is not None and math.isfinite(start) and second > start - 0.1 * abs(start):
            return line + (
                f"; still near the first steps' loss {start:.4g}: stuck (at chance level?): try a smaller learning "
                "rate (a large one kills ReLU units), a larger one if it crawls, or another initialization"
            )
        return line + (
            "; converged? lower the learning rate or stop early if validation error is flat too; "
            "if the loss is still high, try a larger learning rate or momentum"
        )

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """Never stops: this monitor reports (see :attr:`events` and :attr:`messages`)."""
        return False, ""

    @property
    def messages(self) -> list[str]:
        """One line per event, e.g. ``"plateau from step 200 to 450: loss changed 0.1%, gradient norm 2e-4 ..."``."""
        last = len(self.events) - 1
        return [event.describe(ongoing=self.in_plateau and i == last) for i, event in enumerate(self.events)]

    def report(self) -> MonitorReport:
        """Findings: ``plateaus``, one message per plateau or saddle seen."""
        return MonitorReport(findings={"plateaus": self.messages})

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
            "start_loss": math.nan if self.start_loss is None else self.start_loss,
            "alarms": self.alarm_log.state_dict(),
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
        start_loss = float(state.get("start_loss", math.nan))
        self.start_loss = None if math.isnan(start_loss) else start_loss
        if "alarms" in state:
            self.alarm_log.load_state_dict(state["alarms"])
