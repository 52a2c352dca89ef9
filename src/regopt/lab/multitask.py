"""Wire ``[multitask]`` into a run (sec. 7.7): the configured model becomes the shared trunk plus heads.

The configured model must end in an ``nn.Linear`` output layer (mlp, logistic, cnn1d, cnn2d): everything before
it is the trunk, it becomes the ``digit`` head, and each other task gets a new linear head of the same input
width, created in the order of ``tasks`` (so the trunk and the digit head are initialized exactly as the
single-task model's layers). The loss is :class:`~regopt.regularize.MultiTaskLoss` over the tasks'
cross-entropies, with the tasks' targets derived from the digit label as :func:`~regopt.regularize.digit_tasks`
does; the error (and what early stopping on an error watches) judges ``output["digit"]``, while the losses in
``metrics.csv`` (``train_loss``, ``val_loss``) are the weighted multi-task loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.config import ConfigError, MultitaskConfig
from regopt.lab.data import Dataset
from regopt.regularize import DIGIT_TASK_CLASSES, MultiTaskLoss, MultiTaskModel


def multitask_model(config: MultitaskConfig, model: nn.Module, data: Dataset) -> MultiTaskModel:
    """``model``'s layers before its output layer as the trunk, the output layer as the digit head."""
    if data.task != "classification" or data.num_classes != DIGIT_TASK_CLASSES["digit"]:
        raise ConfigError(f"multitask: the tasks are views of digit labels 0..9; {data.name} is not such data")
    if not isinstance(model, nn.Sequential) or not isinstance(model[-1], nn.Linear):
        raise ConfigError(
            "multitask: the model must be a Sequential ending in a Linear output layer (mlp, logistic, cnn1d, cnn2d)"
        )
    trunk, digit_head = model[:-1], model[-1]
    width = digit_head.in_features
    heads: dict[str, nn.Module] = {
        task: digit_head if task == "digit" else nn.Linear(width, DIGIT_TASK_CLASSES[task]).to(digit_head.weight)
        for task in config.tasks
    }
    return MultiTaskModel(trunk, heads)


_DIGIT_TASKS: dict[str, Callable[[Tensor], Tensor]] = {
    "digit": lambda y: y,
    "parity": lambda y: y % 2,
    "greater_than_4": lambda y: (y > 4).long(),
}
""":func:`~regopt.regularize.digit_tasks` without its check of the labels (done once, when the model is built:
the data has 10 classes), which would read the device twice a step and cannot run under ``torch.func``."""


def multitask_loss(config: MultitaskConfig) -> Callable[[Any, Tensor], Tensor]:
    """``(outputs, digit labels) -> sum_t w_t * cross_entropy(outputs[t], task_t(labels))``."""
    weights: dict[str, float] = {task: weight for task, weight in config.weights.items()}
    loss = MultiTaskLoss(dict.fromkeys(config.tasks, F.cross_entropy), weights)

    def multitask_cross_entropy(outputs: Any, y: Tensor) -> Tensor:
        return loss(outputs, {task: _DIGIT_TASKS[task](y) for task in config.tasks})

    return multitask_cross_entropy


def digit_output(outputs: Any) -> Tensor:
    """The output the run's error judges: the digit task's."""
    return outputs["digit"]
