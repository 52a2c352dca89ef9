"""Plain training loops behind the ``pretraining`` gallery entry, the MNIST-1D data and MLPs that it and
``initialization`` share, and the continuation demo of ``curriculum``.

Every run is Adam (lr 1e-3) on MNIST-1D with batches of 100 and a seeded batch order; the validation error is
recorded after each epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BATCH, LR = 100, 1e-3


def mnist1d() -> Any:
    from regopt.lab.config import Mnist1dData
    from regopt.lab.data import load_dataset

    return load_dataset(Mnist1dData(name="mnist1d"))


def error(model: nn.Module, x: Tensor, y: Tensor) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        wrong = (model(x).argmax(dim=1) != y).float().mean().item()
    model.train(was_training)
    return wrong


def mlp(
    widths: Sequence[int], inputs: int = 40, outputs: int = 10, activation: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    from collections import OrderedDict

    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, width in enumerate(widths, start=1):
        layers[f"fc{i}"], layers[f"act{i}"] = nn.Linear(inputs, width), activation()
        inputs = width
    layers["head"] = nn.Linear(inputs, outputs)
    return nn.Sequential(layers)


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


def wiggly(w: Tensor) -> Tensor:
    """f(w) = w^2 + 2 sin(5 w): minima at -0.302 (global), 0.906, 2.112, -1.509, ..."""
    return w**2 + 2 * torch.sin(5 * w)


def continuation_demo(start: float = 2.5, stages: int = 10, steps: int = 50) -> dict[str, Any]:
    """Gradient descent on f, and on the blurred f with sigma from 1 to 0 (:func:`smoothed_loss`)."""
    from regopt.curriculum import continuation_schedule, smoothed_loss

    class Scalar(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor(start, dtype=torch.float64))

        def forward(self, x: Any) -> Tensor:
            return self.w

    def descend(sigmas: list[float]) -> list[float]:
        model, generator = Scalar(), torch.Generator().manual_seed(0)
        no_data = torch.empty(0, dtype=torch.float64)  # the scalar model ignores its input
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
        path = [start]
        for sigma in sigmas:
            for _ in range(steps):
                optimizer.zero_grad()
                loss = smoothed_loss(
                    model, lambda w, _: wiggly(w), no_data, no_data, sigma=sigma, samples=8, generator=generator
                )
                loss.backward()
                optimizer.step()
            path.append(model.w.item())
        return path

    sigmas = continuation_schedule(1.0, stages)
    grid = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    plain, path = descend([0.0] * stages), descend(sigmas)
    return {
        "start": start,
        "sigmas": sigmas,
        "plain": plain,
        "path": path,
        "steps": steps,
        "global": grid[wiggly(grid).argmin()].item(),
        "f_plain": wiggly(torch.tensor(plain[-1])).item(),
        "f_path": wiggly(torch.tensor(path[-1])).item(),
    }
