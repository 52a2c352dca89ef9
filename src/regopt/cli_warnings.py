"""The command line's warnings: records of the ``regopt`` logger at WARNING and above, one line each on stderr."""

from __future__ import annotations

import logging
import sys


class WarningLine(logging.Handler):
    """Prints each record as one line ``regopt: warning: ...`` on the stderr of the moment (so that a progress
    bar that redirects stderr shows it above the bar; the monitors log their alarms while training)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = " ".join(record.getMessage().split())
        except Exception:  # a malformed record must not stop a run
            self.handleError(record)
            return
        print(f"regopt: {record.levelname.lower()}: {message}", file=sys.stderr)


def install_warning_handler() -> None:
    """Route the ``regopt`` logger's warnings to stderr; idempotent (one handler per process). The logger's level
    is left alone: the root logger's default (WARNING) lets warnings through and keeps info records out."""
    logger = logging.getLogger("regopt")
    if not any(isinstance(h, WarningLine) for h in logger.handlers):
        logger.addHandler(WarningLine(logging.WARNING))
