"""Cliffs and exploding gradients (Goodfellow et al. 2016, sec. 8.2.4): gradient norms, spikes, clipping.

A cliff of the loss surface shows up in training as a gradient whose norm is suddenly many times its usual size;
one such step can throw the parameters far away. :func:`gradient_norms` (in :mod:`~regopt.diagnostics.norms`,
re-exported here) measures the gradient, and :class:`GradientMonitor` records its norm during training and
reports spikes against a robust running median.
The remedy, gradient clipping, is in :mod:`regopt.diagnostics.clipping`.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from regopt._checks import check_int, is_finite_real
from regopt.diagnostics.alarms import AlarmLog
from regopt.diagnostics.norms import _grads, _host_norms, _norms, global_grad_norm, gradient_norms
from regopt.monitor import Monitor, MonitorReport

__all__ = ["GradientMonitor", "GradientSpike", "global_grad_norm", "gradient_norms"]


# ------------------------------------------------------------------------------------------------ monitor
class GradientSpike(NamedTuple):
    """A gradient norm far above its running median: a step at the foot of a cliff."""

    step: int
    norm: float
    median: float
    ratio: float  # norm / median


class _Pending(NamedTuple):
    """What :meth:`GradientMonitor.after_backward` measured, waiting for the clipped norm in ``after_step``."""

    step: int
    total: Tensor  # the raw global norm (0-d, float64, on the gradients' device)
    norms: Tensor | None  # the raw per-tensor norms, with per_layer
    names: list[str]
    grads: list[tuple[Tensor, int]]  # each .grad tensor and its version counter, to see whether it changed


class GradientMonitor(Monitor):
    """Record the global gradient norm during training and report spikes (cliffs, exploding gradients).

    Every ``every`` optimizer steps it records the norm of the *raw* gradient, as backward left it: in
    :meth:`after_backward`, which regopt's Trainer calls between backward and its gradient transforms
    (clipping), so that clipping cannot hide the cliff it exists for. :meth:`after_step` then reads the
    gradient the optimizer used (still in ``p.grad``: the Trainer calls monitors after the optimizer step,
    before the next ``zero_grad``) and records its norm beside the raw one in :attr:`clipped_norms` (equal to
    the raw norm when no transform changed the gradient: then nothing is computed twice). A loop that never
    calls ``after_backward`` gets the norm ``after_step`` reads as both. ``(step, norm)`` -- or
    ``(step, norm, {layer: norm})`` with ``per_layer=True`` -- is appended to :attr:`history`. A raw norm
    is a *spike* when::

        norm > spike_factor * median(the last `window` recorded finite norms)

    judged once at least ``min_samples`` norms are recorded (the median is robust: one earlier spike does not
    raise the bar for the next). A non-finite norm is always a spike. Each spike is appended to :attr:`spikes`
    as a :class:`GradientSpike`, described in :attr:`messages` and raised as an alarm (logged on
    ``"regopt.diagnostics"``, at most one line per ``alarm_every`` steps, see :mod:`~regopt.diagnostics.alarms`).
    The monitor reports and never stops training
    (:meth:`after_epoch` returns ``(False, "")``); to stop on NaN/Inf use
    :class:`regopt.diagnostics.guards.NonFiniteGuard`, to tame cliffs clip (:func:`clip_by_norm`).

    Args:
        model: the model whose gradients are watched.
        every: record every this many steps, ``>= 1`` (default ``1``).
        window: the number of recent norms the median is taken over, ``>= 1`` (default ``50``).
        spike_factor: how many times the median a spike is, ``> 1`` (default ``10.0``).
        per_layer: also record each named parameter's gradient norm (default ``False``).
        min_samples: recorded norms needed before judging, ``1 <= min_samples <= window`` (default
            ``min(5, window)``).
        alarm_every: at most one logged alarm per this many steps (default ``100``); all are kept.

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(1, 1, bias=False)
        >>> monitor = GradientMonitor(model, window=10, spike_factor=10.0)
        >>> for step, g in enumerate([1.0, 1.1, 0.9, 1.0, 1.0, 50.0, 1.0], start=1):
        ...     model.weight.grad = torch.full((1, 1), g)
        ...     monitor.after_step(step, torch.tensor(0.0))
        >>> [(s.step, s.norm, s.median) for s in monitor.spikes]
        [(6, 50.0, 1.0)]

    References:
        Pascanu, R., Mikolov, T. & Bengio, Y. (2013). On the difficulty of training recurrent neural networks.
        Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.2.4 and 10.11.1.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        every: int = 1,
        window: int = 50,
        spike_factor: float = 10.0,
        per_layer: bool = False,
        min_samples: int | None = None,
        alarm_every: int = 100,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        check_int("every", every, 1)
        check_int("window", window, 1)
        if not is_finite_real(spike_factor) or spike_factor <= 1:
            raise ValueError(f"spike_factor must be a finite number > 1, got {spike_factor!r}")
        if not isinstance(per_layer, bool):
            raise ValueError(f"per_layer must be True or False, got {per_layer!r}")
        if min_samples is None:
            min_samples = min(5, window)
        check_int("min_samples", min_samples, 1)
        if min_samples > window:
            raise ValueError(f"min_samples must be <= window ({window}), got {min_samples!r}")
        self.model = model
        self.every, self.window, self.spike_factor = every, window, float(spike_factor)
        self.per_layer, self.min_samples = per_layer, min_samples
        self._named = list(model.named_parameters())
        self.layer_names = [name for name, p in self._named if p.requires_grad]
        self._steps: list[int] = []
        self._norms: list[float] = []
        self._clipped: list[float] = []  # the norm after the loop's gradient transforms
        self._pending: _Pending | None = None
        self.alarm_log = AlarmLog("gradient_norms", every=alarm_every)
        self._layer_norms: list[list[float]] = []  # rows in layer_names order; NaN where a grad was missing
        self._recent: deque[float] = deque(maxlen=window)  # the last `window` finite norms
        self.spikes: list[GradientSpike] = []

    # ------------------------------------------------------------------------------------------- hooks
    def after_backward(self, step: int) -> None:
        """Measure the raw gradient of this step (every ``every`` steps), before any gradient transform; no sync."""
        self._pending = None
        if step % self.every:
            return
        names, grads = _grads(self._named)
        if not grads:
            return  # after_step says so
        norms = _norms(grads)
        total = torch.linalg.vector_norm(norms)
        versions = [(g, g._version) for g in grads]
        self._pending = _Pending(step, total, norms if self.per_layer else None, names, versions)

    def after_step(self, step: int, loss: Tensor) -> None:
        """Record the gradient norm of this step (every ``every`` steps) and judge it against the median."""
        if step % self.every:
            return
        pending, self._pending = self._pending, None
        names, grads = _grads(self._named)
        if not grads:
            raise RuntimeError(
                "GradientMonitor found no gradient in the model's parameters: call after_step after backward and "
                "the optimizer step, before zero_grad"
            )
        if pending is not None and pending.step == step:
            # a DTensor's version counter misses in-place changes of its shard (clipping): measure it again
            unchanged = len(grads) == len(pending.grads) and all(
                g is old and g._version == version and not isinstance(g, DTensor)
                for g, (old, version) in zip(grads, pending.grads, strict=True)
            )
            clipped = pending.total if unchanged else torch.linalg.vector_norm(_norms(grads))
            parts = [pending.total.reshape(1), clipped.reshape(1)]
            values = torch.cat(parts + ([pending.norms] if pending.norms is not None else [])).tolist()  # one sync
            total, after, layer_values, names = values[0], values[1], values[2:], pending.names
        elif self.per_layer:
            total, layer_values = _host_norms(grads)
            after = total
        else:
            total = after = torch.linalg.vector_norm(_norms(grads)).item()
        if self.per_layer:
            layers = dict(zip(names, layer_values, strict=True))
            self._layer_norms.append([layers.get(name, math.nan) for name in self.layer_names])
        self._record(step, total, after)

    def _record(self, step: int, norm: float, clipped: float | None = None) -> None:
        self._steps.append(step)
        self._norms.append(norm)
        self._clipped.append(norm if clipped is None else clipped)
        finite = math.isfinite(norm)
        median = statistics.median(self._recent) if self._recent else math.nan
        if not finite or (len(self._recent) >= self.min_samples and norm > self.spike_factor * median):
            ratio = norm / median if median > 0 else math.inf
            spike = GradientSpike(step, norm, median, ratio)
            self.spikes.append(spike)
            self.alarm_log.alarm(step, self._describe(spike, self._clipped[-1]))
        if finite:
            self._recent.append(norm)

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """Never stops: this monitor reports (see :attr:`spikes` and :attr:`messages`)."""
        return False, ""

    # ------------------------------------------------------------------------------------------ reports
    @property
    def history(self) -> list[tuple[Any, ...]]:
        """``(step, norm)`` per recorded step, or ``(step, norm, {layer: norm})`` with ``per_layer=True``."""
        if not self.per_layer:
            return list(zip(self._steps, self._norms, strict=True))
        return [
            (step, norm, dict(zip(self.layer_names, row, strict=True)))
            for step, norm, row in zip(self._steps, self._norms, self._layer_norms, strict=True)
        ]

    @property
    def clipped_norms(self) -> list[float]:
        """The norm after the loop's gradient transforms (clipping) per recorded step, beside :attr:`history`."""
        return list(self._clipped)

    @property
    def messages(self) -> list[str]:
        """One line per spike, e.g. ``"gradient spike at step 6: norm 50 is 50x the running median 1 ..."``."""
        clipped = dict(zip(self._steps, self._clipped, strict=True))
        return [self._describe(spike, clipped.get(spike.step, spike.norm)) for spike in self.spikes]

    def _describe(self, spike: GradientSpike, clipped: float) -> str:
        if not math.isfinite(spike.norm):
            return f"gradient spike at step {spike.step}: norm is {spike.norm} (non-finite; exploding gradients)"
        line = (
            f"gradient spike at step {spike.step}: norm {spike.norm:.4g} is {spike.ratio:.3g}x the running "
            f"median {spike.median:.4g} (threshold {self.spike_factor:g}x): a cliff of the loss surface; "
        )
        if clipped < spike.norm * (1 - 1e-6):
            return line + (
                f"clipped to norm {clipped:.4g} before the step (the clipping is doing its job; if spikes recur, "
                "lower the learning rate)"
            )
        return line + "consider clipping the gradient norm (train.clip_grad_norm) or a lower learning rate"

    def report(self) -> MonitorReport:
        """``gradient_norms.csv``: per recorded step the raw norm (``grad_norm``, before clipping) and the norm
        the optimizer used (``clipped_norm``); findings: ``gradient_spikes``, one message per spike."""
        rows = [
            {"step": step, "grad_norm": norm, "clipped_norm": clipped}
            for step, norm, clipped in zip(self._steps, self._norms, self._clipped, strict=True)
        ]
        return MonitorReport({"gradient_norms.csv": rows}, {"gradient_spikes": self.messages})

    # -------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """History, window and spikes as tensors (safe for ``torch.load(weights_only=True)``)."""
        return {
            "every": self.every,
            "window": self.window,
            "per_layer": self.per_layer,
            "layer_names": list(self.layer_names),
            "steps": torch.tensor(self._steps, dtype=torch.int64),
            "norms": torch.tensor(self._norms, dtype=torch.float64),
            "clipped_norms": torch.tensor(self._clipped, dtype=torch.float64),
            "layer_norms": torch.tensor(self._layer_norms, dtype=torch.float64).reshape(
                len(self._layer_norms), len(self.layer_names)
            ),
            "recent": torch.tensor(list(self._recent), dtype=torch.float64),
            "spikes": torch.tensor([list(s) for s in self.spikes], dtype=torch.float64).reshape(-1, 4),
            "alarms": self.alarm_log.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, for a monitor with the same settings and model."""
        for key in ("every", "window", "per_layer"):
            if state[key] != getattr(self, key):
                raise ValueError(f"GradientMonitor state has {key}={state[key]!r}, this monitor {getattr(self, key)!r}")
        if self.per_layer and list(state["layer_names"]) != self.layer_names:
            raise ValueError("GradientMonitor state was recorded on a model with other parameter names")
        self._steps = [int(s) for s in state["steps"].tolist()]
        self._norms = [float(n) for n in state["norms"].tolist()]
        self._clipped = [float(n) for n in state.get("clipped_norms", state["norms"]).tolist()]
        self._layer_norms = [list(map(float, row)) for row in state["layer_norms"].tolist()]
        self._recent = deque(state["recent"].tolist(), maxlen=self.window)
        self.spikes = [GradientSpike(int(s), n, m, r) for s, n, m, r in state["spikes"].tolist()]
        if "alarms" in state:
            self.alarm_log.load_state_dict(state["alarms"])
