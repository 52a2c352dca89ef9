"""Training progress for a person: a live bar on a terminal, one plain line per epoch anywhere else.

On a terminal (stdout is a TTY and ``CI`` is not set) a rich bar over optimizer steps shows the epoch, the step,
the elapsed time and the ETA on its first line, and the latest epoch's metrics on a second line of their own, so
an 80-column terminal shows them whole. Anywhere else (CI logs, ``| tee``, a notebook cell, a file) a live bar's
redraws print as garbage, so each epoch prints one line instead::

    epoch 12/150  train err 0.0312  val err 0.0764  loss 0.0913  lr 0.05  1.2 s

(the seconds are the epoch's, evaluation included). ``enabled=False`` (``--quiet``) prints nothing either way.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Literal, TextIO

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

ProgressMode = Literal["live", "lines", "off"]


def progress_mode(
    enabled: bool, stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> ProgressMode:
    """``"live"`` on a terminal, ``"lines"`` off one or under CI (``CI`` set to anything but ``""``/``0``/``false``),
    ``"off"`` when disabled."""
    if not enabled:
        return "off"
    stream = sys.stdout if stream is None else stream
    environ = os.environ if environ is None else environ
    in_ci = environ.get("CI", "").strip().lower() not in ("", "0", "false")
    is_terminal = bool(getattr(stream, "isatty", lambda: False)())
    return "live" if is_terminal and not in_ci else "lines"


def epoch_line(row: Mapping[str, float], epochs: int, seconds: float | None = None) -> str:
    """One epoch's metrics as a plain line: ``epoch 12/150  train err 0.0312  val err 0.0764  loss 0.0913  lr 0.05``
    (then the epoch's seconds, when given)."""
    line = (
        f"epoch {int(row['epoch'])}/{epochs}  train err {row['train_error']:.4f}  val err {row['val_error']:.4f}  "
        f"loss {row['train_loss']:.4f}  lr {row['lr']:.3g}"
    )
    return line if seconds is None else f"{line}  {seconds:.1f} s"


class _BarWithMetrics(Progress):
    """A rich Progress whose latest metrics sit on a line of their own under the bar (never cut at the width)."""

    metrics = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.metrics:
            yield Text(self.metrics, overflow="fold")


class TrainingProgress:
    """Context manager: ``advance()`` after each step, ``show(row)`` after each epoch.

    Args:
        total_steps: optimizer steps of the whole run (the bar's length).
        enabled: print anything at all (``--quiet`` turns it off).
        epochs: the run's epoch limit, shown as ``epoch 12/150``.
        description: the bar's label.
        stream: where to print (default stdout); its ``isatty`` and ``CI`` choose the bar or the lines.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        enabled: bool = True,
        epochs: int | None = None,
        description: str = "training",
        stream: TextIO | None = None,
    ) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.mode = progress_mode(enabled, self.stream)
        self._progress: _BarWithMetrics | None = None
        self._task = TaskID(0)
        self._total, self._description, self._epochs = total_steps, description, epochs
        self._epoch_started = time.perf_counter()

    def __enter__(self) -> TrainingProgress:
        self._epoch_started = time.perf_counter()
        if self.mode == "live":
            self._progress = _BarWithMetrics(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("steps  {task.fields[epoch]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._description, total=self._total, epoch="")
        return self

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None and steps:
            self._progress.advance(self._task, steps)

    def show(self, row: Mapping[str, float]) -> None:
        """After an epoch: the metrics under the bar, or one plain line."""
        epochs = self._epochs if self._epochs is not None else int(row["epoch"])
        now = time.perf_counter()
        seconds, self._epoch_started = now - self._epoch_started, now
        if self._progress is not None:
            self._progress.metrics = epoch_line(row, epochs)
            self._progress.update(self._task, epoch=f"epoch {int(row['epoch'])}/{epochs}")
        elif self.mode == "lines":
            print(epoch_line(row, epochs, seconds), file=self.stream, flush=True)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)


__all__ = ["ProgressMode", "TrainingProgress", "epoch_line", "progress_mode"]
