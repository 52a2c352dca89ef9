"""The plain training loops the gallery's ``pretraining`` and ``curriculum`` entries ran before they moved onto
the Trainer, kept as references: ``[pretraining]`` and ``[curriculum]`` runs must compute what they compute.

Every run is Adam (lr 1e-3) on MNIST-1D with batches of 100 and a seeded batch order; the validation error is
recorded after each epoch (counted in float32, as the loops always did).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.gallery.meta_runs import BATCH, LR, mlp


def error(model: nn.Module, x: Tensor, y: Tensor) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        wrong = (model(x).argmax(dim=1) != y).float().mean().item()
    model.train(was_training)
    return wrong


def train_epochs(
    model: nn.Module,
    data: Any,
    epochs: int,
    shuffle: torch.Generator,
    history: list[float],
    *,
    examples: Callable[[int], Tensor] | None = None,
) -> int:
    """Adam (lr 1e-3) over the trainable parameters for ``epochs`` epochs; appends the validation error after
    each to ``history``; ``examples(epoch)`` gives the epoch's example indices (default all, shuffled).
    Returns the number of optimizer steps."""
    from regopt import Adam

    optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=LR)
    steps = 0
    model.train()
    for _ in range(epochs):
        epoch = len(history)
        index = examples(epoch) if examples else torch.randperm(len(data.x_train), generator=shuffle)
        for start in range(0, len(index), BATCH):
            batch = index[start : start + BATCH]
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
            steps += 1
        history.append(error(model, data.x_val, data.y_val))
    return steps


def pretraining_run(
    name: str, seed: int, data: Any, widths: Sequence[int], epochs_per_stage: int
) -> tuple[list[float], float, int, float]:
    """One run of the ``pretraining`` entry: validation error per epoch, test error, optimizer steps, seconds."""
    from regopt.pretraining import greedy_supervised_pretraining

    started = time.perf_counter()
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    history: list[float] = []
    steps = 0

    def train(model: nn.Module) -> None:
        nonlocal steps
        steps += train_epochs(model, data, epochs_per_stage, shuffle, history)

    if name == "from scratch":
        model = mlp(widths)
        steps = train_epochs(model, data, epochs_per_stage * (len(widths) + 1), shuffle, history)
    else:
        model = greedy_supervised_pretraining(
            lambda: mlp(widths[:1]), widths[1:], train, freeze_existing="frozen" in name
        )
    return history, error(model, data.x_test, data.y_test), steps, time.perf_counter() - started


def curriculum_run(
    schedule: Any, same_steps: bool, seed: int, data: Any, epochs: int
) -> tuple[list[float], float, int]:
    """An MLP [100, 100] trained with Adam on the epoch's examples of ``schedule`` (all, shuffled, when ``None``);
    with ``same_steps`` the subset is cycled (reshuffled each pass) up to the size of the training set. Returns
    the validation error per epoch, the test error and the number of optimizer steps."""
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    n = len(data.x_train)

    def examples(epoch: int) -> torch.Tensor:
        if schedule is None:
            return torch.randperm(n, generator=shuffle)
        passes = math.ceil(n / schedule.size(epoch)) if same_steps else 1
        return torch.cat([schedule.indices(epoch, shuffle) for _ in range(passes)])[: n if same_steps else None]

    model, history = mlp([100, 100]), list[float]()
    steps = train_epochs(model, data, epochs, shuffle, history, examples=examples)
    return history, error(model, data.x_test, data.y_test), steps
