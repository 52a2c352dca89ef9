"""Wire a ``[diagnostics]`` config section into the Trainer's monitor phase, and report what they saw.

The non-finite guard runs first (on by default), so no other monitor ever sees a NaN step and the checkpoint
of a broken step is never written; the ill-conditioning monitor's last finite stable-learning-rate estimate is
quoted in the guard's message (not one from a check whose g'Hg overflowed).

Each monitor logs its alarms as they happen (on ``"regopt.diagnostics"``, rate-limited, see
:mod:`regopt.diagnostics.alarms`; the ill-conditioning monitor issues no Python warning besides, which would
print every alarm unlimited); :func:`report_diagnostics` lists them again for the run's summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.optim import Optimizer

from regopt.diagnostics import GradientMonitor, IllConditioningMonitor, NonFiniteGuard, PlateauMonitor
from regopt.lab.atomic import write_csv
from regopt.lab.config import DiagnosticsConfig
from regopt.lab.data import Dataset
from regopt.monitor import Monitor


@dataclass
class DiagnosticMonitors:
    guard: NonFiniteGuard | None = None
    gradients: GradientMonitor | None = None
    conditioning: IllConditioningMonitor | None = None
    plateau: PlateauMonitor | None = None
    all: list[Monitor] = field(default_factory=list)


def diagnostic_monitors(
    config: DiagnosticsConfig, model: nn.Module, optimizer: Optimizer, data: Dataset, loss_fn: Any
) -> DiagnosticMonitors:
    """The configured monitors, guard first."""
    out = DiagnosticMonitors()

    def lr() -> float:
        return float(optimizer.param_groups[0]["lr"])

    if config.ill_conditioning is not None:
        c = config.ill_conditioning
        if c.probe_size is None:  # the step actually taken: the Trainer lets the monitor run that backward
            out.conditioning = IllConditioningMonitor(model, lr_fn=lr, every=c.every, patience=c.patience, warn=False)
        else:
            probe = (data.x_train[: c.probe_size], data.y_train[: c.probe_size])
            out.conditioning = IllConditioningMonitor(
                model, loss_fn, probe, lr, every=c.every, patience=c.patience, warn=False
            )
    if config.nonfinite_guard:
        conditioning = out.conditioning

        def stable_lr() -> float | None:
            last = conditioning.last_stable_lr() if conditioning is not None else None
            return last[1] if last is not None else None

        out.guard = NonFiniteGuard(model, lr_fn=lr, stable_lr_fn=stable_lr)
    if config.gradient_norms is not None:
        g = config.gradient_norms
        out.gradients = GradientMonitor(model, every=g.every, window=g.window, spike_factor=g.spike_factor)
    if config.plateau is not None:
        p = config.plateau
        out.plateau = PlateauMonitor(
            model, window=p.window, loss_tol=p.loss_tol, noise_z=p.noise_z, grad_tol=p.grad_tol
        )
    out.all = [m for m in (out.guard, out.gradients, out.conditioning, out.plateau) if m is not None]
    return out


def report_diagnostics(monitors: DiagnosticMonitors, run_dir: Path) -> dict[str, Any]:
    """Write each monitor's history as CSV in the run directory; return its findings for ``summary.json``.

    ``gradient_norms.csv`` has the raw norm (``grad_norm``, before clipping) and the norm the optimizer used
    (``clipped_norm``); ``ill_conditioning.csv`` leaves ``stable_lr`` empty where g'Hg overflowed, with a
    ``note``. The findings include ``alarms``: every alarm the monitors logged, in step order, as
    ``{"monitor", "step", "message"}`` (the message carries the advice), and ``alarms_not_shown``: per monitor,
    how many more the rate limit kept off the console (they are in the monitor's own list). Logs one line per
    monitor counting alarms held back since its last logged one.
    """
    found: dict[str, Any] = {}
    if monitors.gradients is not None:
        g = monitors.gradients
        rows = [
            {"step": h[0], "grad_norm": h[1], "clipped_norm": c}
            for h, c in zip(g.history, g.clipped_norms, strict=True)
        ]
        write_csv(run_dir / "gradient_norms.csv", rows)
        found["gradient_spikes"] = list(g.messages)
    if monitors.conditioning is not None:
        write_csv(run_dir / "ill_conditioning.csv", [_conditioning_row(r) for r in monitors.conditioning.history])
        found["ill_conditioning_alarms"] = list(monitors.conditioning.alarms)
        last = monitors.conditioning.last_stable_lr()
        if monitors.conditioning.history:
            found["last_stable_lr"] = last[1] if last is not None else None
    if monitors.plateau is not None:
        found["plateaus"] = list(monitors.plateau.messages)
    logs = [m.alarm_log for m in (monitors.gradients, monitors.conditioning, monitors.plateau) if m is not None]
    for log in logs:
        log.flush("summary.json lists them all")
    alarms = sorted((a for log in logs for a in log.shown), key=lambda a: a.step)
    if logs:
        found["alarms"] = [{"monitor": a.monitor, "step": a.step, "message": a.message} for a in alarms]
        held = {log.monitor: log.held_back for log in logs if log.held_back}
        if held:
            found["alarms_not_shown"] = held
    return found


def _conditioning_row(row: dict[str, float]) -> dict[str, Any]:
    """A history row for the CSV: an unknown stable lr (overflow) is an empty cell with a note, not a number."""
    out: dict[str, Any] = dict(row)
    note = ""
    if math.isnan(row["stable_lr"]):
        out["stable_lr"] = ""
        note = "overflow: g'Hg or g'g is not finite (float32), no stable-lr estimate"
    out["note"] = note
    return out
