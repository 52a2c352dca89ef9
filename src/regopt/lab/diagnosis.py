"""Wire a ``[diagnostics]`` config section into the Trainer's monitor phase, and report what they saw.

The non-finite guard runs first (on by default), so no other monitor ever sees a NaN step and the checkpoint
of a broken step is never written; the ill-conditioning monitor's last finite stable-learning-rate estimate is
quoted in the guard's message (not one from a check whose g'Hg overflowed).

Each monitor logs its alarms as they happen (on ``"regopt.diagnostics"``, rate-limited, see
:mod:`regopt.diagnostics.alarms`; the ill-conditioning monitor issues no Python warning besides, which would
print every alarm unlimited); :func:`report_diagnostics` lists them again for the run's summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.optim import Optimizer

from regopt.diagnostics.alarms import AlarmLog
from regopt.lab.atomic import write_csv
from regopt.lab.config import DiagnosticsConfig
from regopt.lab.data import PREPROCESSING, Dataset
from regopt.lab.run_dir import CHECKPOINT, CONFIG, CURVES, METRICS, SUMMARY
from regopt.lab.schema.diagnostics import DIAGNOSTICS
from regopt.lab.schema.wiring import WiringContext
from regopt.monitor import Monitor

RESERVED = frozenset({CHECKPOINT, CONFIG, CURVES, METRICS, SUMMARY, PREPROCESSING})
"""Files of the run directory a monitor's table may not replace."""


@dataclass
class Diagnostics:
    """The monitors a ``[diagnostics]`` section built, by config key, in the order they run."""

    monitors: dict[str, Monitor] = field(default_factory=dict)

    @property
    def all(self) -> list[Monitor]:
        return list(self.monitors.values())


def diagnostic_monitors(
    config: DiagnosticsConfig,
    model: nn.Module,
    optimizer: Optimizer,
    data: Dataset,
    loss_fn: Any,
    batch_size: int | None = None,
) -> Diagnostics:
    """The configured monitors, in :data:`DIAGNOSTICS` order."""
    ctx = WiringContext(model, optimizer, data, loss_fn, batch_size=batch_size)
    for key, factory in DIAGNOSTICS.items():
        section = getattr(config, key)
        if section is not None and section is not False:
            ctx.built[key] = factory(section, ctx)
    return Diagnostics(ctx.built)


def report_diagnostics(diagnostics: Diagnostics | Sequence[Monitor], run_dir: Path) -> dict[str, Any]:
    """Write each monitor's tables (:meth:`~regopt.monitor.Monitor.report`) as CSV files in the run directory and
    return their findings for ``summary.json``: the diagnostics', or any monitors' (a run reports all of its own).

    The findings also include ``alarms``: every alarm the monitors logged, in step order, as
    ``{"monitor", "step", "message"}`` (the message carries the advice), and ``alarms_not_shown``: per monitor,
    how many more the rate limit kept off the console (they are in the monitor's own list). Logs one line per
    monitor whose alarms were held back, pointing to ``summary.json``.
    """
    monitors = diagnostics.all if isinstance(diagnostics, Diagnostics) else list(diagnostics)
    found: dict[str, Any] = {}
    written: dict[str, str] = {}
    for monitor in monitors:
        report = monitor.report()
        who = type(monitor).__name__
        for name, rows in report.tables.items():
            if Path(name).name != name or not name.endswith(".csv"):
                raise ValueError(f"{who}.report(): table {name!r} is not a plain .csv file name")
            if name in RESERVED or name in written:
                owner = f"{written[name]}'s table" if name in written else "the run directory's own file"
                raise ValueError(f"{who}.report(): table {name!r} would overwrite {owner}")
            written[name] = who
            write_csv(run_dir / name, rows)
        found.update(report.findings)
    logs = [log for m in monitors if isinstance(log := getattr(m, "alarm_log", None), AlarmLog)]
    for log in logs:
        log.flush("summary.json lists them all")
    alarms = sorted((a for log in logs for a in log.shown), key=lambda a: a.step)
    if logs:
        found["alarms"] = [{"monitor": a.monitor, "step": a.step, "message": a.message} for a in alarms]
        held = {log.monitor: log.held_back for log in logs if log.held_back}
        if held:
            found["alarms_not_shown"] = held
    return found
