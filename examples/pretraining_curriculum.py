"""Greedy supervised pretraining, curriculum learning and continuation in plain PyTorch loops.

    python examples/pretraining_curriculum.py

1. Greedy supervised pretraining (sec. 8.7.4): train a 1-hidden-layer MLP on the digits, add a layer, train the
   new layer and head with the earlier layers frozen, ..., then fine-tune everything; against the same 3-layer
   MLP trained from scratch for as many epochs.
2. Curriculum learning (sec. 8.7.6): score each training digit by the loss of a small reference model, then
   train on the easiest 20% first, growing to all of them by half-way; against random order.
3. Continuation (sec. 8.7.6): gradient descent on f(w) = w^2 + 2 sin(5w) from w = 2.5 stops in a local
   minimum; descending the Gaussian-blurred f while the blur shrinks to 0 reaches the global one.

Each prints one line; ``main`` returns the numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.curriculum import (
    Curriculum,
    continuation_schedule,
    curriculum_subset,
    difficulty_by_loss,
    smoothed_loss,
)
from regopt.pretraining import greedy_supervised_pretraining

BATCH = 32


def load_data(train_size: int = 1000):
    """Digits as 64-vectors in [0, 1], shuffled once: a training set and the rest for testing."""
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) != y).float().mean().item()


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One pass over (x, y) in the given order."""
    for start in range(0, len(x), BATCH):
        optimizer.zero_grad()
        F.cross_entropy(model(x[start : start + BATCH]), y[start : start + BATCH]).backward()
        optimizer.step()


def shuffled(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randperm(len(x), generator=generator)
    return x[index], y[index]


def pretraining(epochs_per_stage: int) -> dict[str, float]:
    x, y, x_test, y_test = load_data()
    generator = torch.Generator().manual_seed(0)

    def train(model: nn.Module) -> None:  # one stage; a fresh optimizer over what is trainable
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for _ in range(epochs_per_stage):
            train_epoch(model, optimizer, *shuffled(x, y, generator))

    def shallow() -> nn.Sequential:
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    torch.manual_seed(0)
    greedy = greedy_supervised_pretraining(shallow, [64, 64], train, freeze_existing=True, finetune=True)
    torch.manual_seed(0)
    scratch = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    scratch.append(nn.Linear(64, 10))
    optimizer = torch.optim.Adam(scratch.parameters(), lr=1e-3)
    for _ in range(4 * epochs_per_stage):  # 3 stages + fine-tuning
        train_epoch(scratch, optimizer, *shuffled(x, y, generator))
    return {"greedy": test_error(greedy, x_test, y_test), "scratch": test_error(scratch, x_test, y_test)}


def curriculum(epochs: int) -> dict[str, float]:
    x, y, x_test, y_test = load_data()
    torch.manual_seed(0)
    reference = nn.Linear(64, 10)  # logistic regression, one epoch: a cheap judge of difficulty
    train_epoch(reference, torch.optim.Adam(reference.parameters(), lr=1e-2), x, y)
    schedule = Curriculum(difficulty_by_loss(reference, None, x, y), start_fraction=0.2, epochs_to_full=epochs // 2)
    errors = {}
    for name in ("random order", "curriculum"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        for epoch in range(epochs):
            if name == "curriculum":
                batch_x, batch_y = curriculum_subset(x, y, schedule, epoch, generator)  # easiest first, shuffled
            else:
                batch_x, batch_y = shuffled(x, y, generator)
            train_epoch(model, optimizer, batch_x, batch_y)
        errors[name] = test_error(model, x_test, y_test)
    return errors


class Scalar(nn.Module):
    """A one-parameter "model" whose output is its parameter w."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: object) -> torch.Tensor:
        return self.w


def continuation(stages: int = 10, steps: int = 50) -> dict[str, float]:
    def f(w: torch.Tensor, _: object = None) -> torch.Tensor:
        return w**2 + 2 * torch.sin(5 * w)

    finals = {}
    for name, sigmas in (("plain", [0.0] * stages), ("continuation", continuation_schedule(1.0, stages))):
        model, generator = Scalar(2.5), torch.Generator().manual_seed(0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
        for sigma in sigmas:  # blur a lot, then less, then not at all
            for _ in range(steps):
                optimizer.zero_grad()
                smoothed_loss(model, f, None, None, sigma=sigma, samples=8, generator=generator).backward()
                optimizer.step()
        finals[name] = model.w.item()
    return finals


def main(epochs: int = 20) -> dict[str, dict[str, float]]:
    results = {
        "pretraining": pretraining(max(1, epochs // 4)),
        "curriculum": curriculum(epochs),
        "continuation": continuation(),
    }
    p, c, w = results["pretraining"], results["curriculum"], results["continuation"]
    print(
        f"greedy pretraining (frozen, then fine-tuned): test error {p['greedy']:.3f}; from scratch {p['scratch']:.3f}"
    )
    print(f"curriculum (easy first): test error {c['curriculum']:.3f}; random order {c['random order']:.3f}")
    print(
        f"f(w) = w^2 + 2 sin(5w) from w = 2.5: plain GD ends at w = {w['plain']:.3f}, "
        f"continuation at w = {w['continuation']:.3f}"
    )
    return results


if __name__ == "__main__":
    main()
