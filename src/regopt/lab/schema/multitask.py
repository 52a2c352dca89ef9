"""Config section ``[multitask]``: multi-task learning (sec. 7.7) on digit labels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from regopt.lab.schema.base import NonNegative, Strict

DigitTask = Literal["digit", "parity", "greater_than_4"]
DIGIT_TASKS: tuple[DigitTask, ...] = ("digit", "parity", "greater_than_4")


class MultitaskConfig(Strict):
    """A shared trunk (the configured model without its output layer, the generic parameters) and one linear
    head per task (the task-specific parameters), trained on the weighted sum of the tasks' cross-entropies.
    The tasks are views of the digit label (``regopt.regularize.digit_tasks``), so the data must be digits or
    MNIST-1D. The run's errors (and early stopping on an error) judge the ``digit`` task; its losses are the
    weighted multi-task loss."""

    tasks: list[DigitTask] = Field(default_factory=lambda: list(DIGIT_TASKS))
    """Tasks trained together; ``digit`` (the label itself) must be one of them."""
    weights: dict[DigitTask, NonNegative] = Field(default_factory=dict)
    """Weight of each task's loss in the sum; tasks not named weigh 1."""

    @model_validator(mode="after")
    def _digit_task_and_no_repeats(self) -> MultitaskConfig:
        if "digit" not in self.tasks:
            raise ValueError("tasks must include 'digit', the task whose error the run reports")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks are listed more than once: {self.tasks}")
        unknown = [t for t in self.weights if t not in self.tasks]
        if unknown:
            raise ValueError(f"weights name tasks that are not trained: {unknown}")
        return self
