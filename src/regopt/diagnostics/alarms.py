"""Alarms: how a monitor tells the user, while training runs, what it found and what to do about it.

Every monitor of :mod:`regopt.diagnostics` keeps its findings (spikes, plateaus, ill-conditioning) and also
raises an *alarm* for each: one line naming the step, what was seen and the advice. :class:`AlarmLog` keeps every
alarm (:attr:`AlarmLog.alarms`) and emits them through Python's :mod:`logging`, on the logger
``"regopt.diagnostics"`` (:data:`LOGGER_NAME`) at level ``WARNING``, rate-limited so that a run with a spike at
every step does not flood the console:

- the first alarm of a monitor is logged at once;
- after a logged alarm, the next ones within ``every`` steps are kept but not logged; the first one after that
  is logged with a count of those not shown (``"(3 more since step 40 not shown)"``);
- :meth:`AlarmLog.flush` (at the end of training) logs one line counting any left unshown.

Any program sees them with ordinary logging configuration, e.g. ``logging.basicConfig()``; without any,
Python's last-resort handler prints warnings to stderr. regopt's command line prints them as
``regopt: warning: ...``.

Example:
    >>> log = AlarmLog("gradient_norms", every=100)
    >>> for step in (5, 6, 7, 300):
    ...     _ = log.alarm(step, f"gradient spike at step {step}")
    >>> [a.step for a in log.alarms], [a.step for a in log.shown]
    ([5, 6, 7, 300], [5, 300])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from regopt._checks import check_int

__all__ = ["LOGGER_NAME", "Alarm", "AlarmLog"]

LOGGER_NAME = "regopt.diagnostics"
"""The logger every monitor's alarms go to (a child of ``"regopt"``)."""

logger = logging.getLogger(LOGGER_NAME)


class Alarm(NamedTuple):
    """One finding of a monitor: which monitor, at which optimizer step, and the line that says it."""

    monitor: str  # e.g. "gradient_norms", "ill_conditioning", "plateau"
    step: int
    message: str  # one line: what was seen and what to do
    shown: bool  # whether it was logged (False: held back by the rate limit)


class AlarmLog:
    """The alarms of one monitor, each kept and logged at ``WARNING`` with a rate limit (see the module doc).

    Args:
        monitor: the monitor's name, the first word of each logged line's context (``"plateau"``).
        every: after a logged alarm, hold back the next ones for this many steps, ``>= 1`` (default ``100``);
            ``1`` logs every alarm.
    """

    def __init__(self, monitor: str, *, every: int = 100) -> None:
        check_int("every", every, 1)
        self.monitor, self.every = monitor, every
        self.alarms: list[Alarm] = []
        self._last_shown: int | None = None  # the step of the last logged alarm
        self._held: list[int] = []  # steps of the alarms held back since then

    def alarm(self, step: int, message: str) -> Alarm:
        """Keep the alarm of ``step`` and log it unless the rate limit holds it back; returns it."""
        shown = self._last_shown is None or step - self._last_shown >= self.every
        if shown:
            line = message
            if self._held:
                line += f" ({len(self._held)} more {self.monitor} alarms since step {self._held[0]} not shown)"
            logger.warning(line)
            self._last_shown, self._held = step, []
        else:
            self._held.append(step)
        alarm = Alarm(self.monitor, step, message, shown)
        self.alarms.append(alarm)
        return alarm

    def flush(self, where: str = "the monitor keeps them all") -> None:
        """Log one line counting the alarms held back since the last logged one (at the end of training), ending
        with ``where`` they can be read."""
        if self._held:
            logger.warning(
                f"{len(self._held)} more {self.monitor} alarms from step {self._held[0]} to {self._held[-1]} "
                f"not shown ({where})"
            )
            self._held = []

    @property
    def shown(self) -> list[Alarm]:
        """The alarms that were logged."""
        return [a for a in self.alarms if a.shown]

    @property
    def held_back(self) -> int:
        """How many alarms the rate limit kept off the log."""
        return sum(not a.shown for a in self.alarms)

    def state_dict(self) -> dict[str, Any]:
        """Plain values (safe for ``torch.load(weights_only=True)``)."""
        return {
            "every": self.every,
            "alarms": [[a.step, a.message, a.shown] for a in self.alarms],
            "last_shown": -1 if self._last_shown is None else self._last_shown,
            "held": list(self._held),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.alarms = [Alarm(self.monitor, int(s), str(m), bool(shown)) for s, m, shown in state["alarms"]]
        last = int(state["last_shown"])
        self._last_shown = None if last < 0 else last
        self._held = [int(s) for s in state["held"]]
