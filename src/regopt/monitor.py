"""The monitor contract: an object that watches training and may ask it to stop.

Monitors are techniques (early stopping, divergence guards, curvature alarms), so they live below the lab and
know nothing of its Trainer: they receive plain numbers and tensors. Any training loop can drive them::

    for epoch in range(epochs):
        for x, y in batches:
            loss = train_step(x, y)
            for m in monitors:
                m.after_step(step, loss)
        metrics = {"val_error": evaluate(), ...}
        if any(m.after_epoch(epoch, metrics)[0] for m in monitors):
            break

A loop that supports it calls :meth:`Monitor.after_backward` between the backward pass and its gradient
transforms (clipping), so that a monitor sees the raw gradient, before clipping hides a cliff::

    loss.backward()
    for m in monitors:
        m.after_backward(step)
    clip(model)
    optimizer.step()

A monitor may also run a step's backward pass itself (:meth:`Monitor.backward`, e.g. the ill-conditioning
monitor keeps the gradient's graph at its check steps to reuse it for a Hessian-vector product); a loop that
supports this replaces ``loss.backward()`` by::

    if not any(m.backward(step, loss) for m in monitors):
        loss.backward()

Decisions are returned as ``(stop, reason)`` so a log can say why training ended, and monitors expose
``state_dict()``/``load_state_dict()`` so a resumed run decides exactly as an uninterrupted one. After training,
:meth:`Monitor.report` says what a monitor measured: tables (rows for CSV files the caller writes where it keeps
results, e.g. a run directory) and findings (JSON-ready numbers and messages for a summary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class MonitorReport:
    """What a monitor measured, for the record: ``tables`` maps a file name (``"gradient_norms.csv"``) to its
    rows (dicts with the same keys), ``findings`` holds JSON-ready values for a run summary."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)


class Monitor:
    """Base class with no-op hooks; subclasses override what they need."""

    def after_step(self, step: int, loss: Tensor) -> None:
        """Called after every optimizer step with the global step count (1-based) and the detached task loss.

        May raise to abort training at once (e.g. on a non-finite loss).
        """

    def backward(self, step: int, loss: Tensor) -> bool:
        """Optionally run the backward pass of step ``step`` (1-based) on ``loss``, the objective minimized (task
        loss plus penalties), in place of ``loss.backward()``; return whether it did.

        A monitor that does must leave in ``p.grad`` exactly what ``loss.backward()`` would have. Loops ask the
        monitors in order and stop at the first that ran it. The default does nothing and returns ``False``.
        """
        return False

    def after_backward(self, step: int) -> None:
        """Called after the backward pass of step ``step`` (1-based), before the loop's gradient transforms
        (clipping) and the optimizer step: ``p.grad`` holds the raw gradient. Must not change anything that
        training reads (parameters, gradients, the RNG). The default does nothing; loops that do not call it
        leave monitors to read the (possibly clipped) gradient in :meth:`after_step`. With an optimizer that
        differentiates its closure itself (Newton, HessianFree: :func:`regopt.optim.differentiates_closure`) no
        backward runs outside its step, so it is called right after that step, where ``p.grad`` holds the gradient
        at the parameters the step started from.
        """

    def after_epoch(self, epoch: int, metrics: Mapping[str, float]) -> tuple[bool, str]:
        """Called after each epoch's evaluation (``epoch`` is 1-based); return ``(stop, reason)``."""
        return False, ""

    def report(self) -> MonitorReport:
        """What this monitor measured, as tables and findings; the default has neither."""
        return MonitorReport()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue deciding exactly as before."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
