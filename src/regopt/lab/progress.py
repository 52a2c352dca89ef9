"""A rich progress bar over optimizer steps that shows the latest epoch's metrics; silent when disabled."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Context manager: ``advance()`` after each step, ``show(row)`` after each epoch."""

    def __init__(self, total_steps: int, *, enabled: bool = True, description: str = "training") -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = TaskID(0)
        self._total, self._description = total_steps, description

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self._description, total=self._total, metrics="")
        return self

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None and steps:
            self._progress.advance(self._task, steps)

    def show(self, row: Mapping[str, float]) -> None:
        if self._progress is not None:
            text = (
                f"epoch {int(row['epoch'])}  train err {row['train_error']:.4f}  "
                f"val err {row['val_error']:.4f}  loss {row['train_loss']:.4f}"
            )
            self._progress.update(self._task, metrics=text)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
