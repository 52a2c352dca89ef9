"""Multi-task learning (sec. 7.7) in a plain PyTorch loop: a shared trunk, one head per task, a summed loss.

    python examples/regularize_multitask.py

Each digit image has three labels (``digit_tasks``): the digit, its parity and whether it is greater than 4.
The trunk's parameters (generic) are trained by all three losses, each head's (task-specific) by its own.
``MultiTaskLoss`` also accepts the targets stacked into one ``(N, 3)`` tensor (``stack_targets``), which suits
loops and loaders that carry a single ``y``; ``loss_fn.last`` holds each task's loss for logging.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from regopt.regularize import DIGIT_TASK_CLASSES, MultiTaskLoss, MultiTaskModel, digit_tasks, stack_targets


def load_data(train_size: int = 200):
    """Digits as 64-vectors in [0, 1]: a small training set and the rest for testing."""
    digits = load_digits()
    x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:train_size], y[:train_size], x[train_size:], y[train_size:]


def main(steps: int = 600, weights: dict[str, float] | None = None) -> dict[str, float]:
    x, y, x_test, y_test = load_data()
    tasks = tuple(DIGIT_TASK_CLASSES)  # ("digit", "parity", "greater_than_4")
    targets = stack_targets(digit_tasks(y), tasks)  # (N, 3): column j is task j's label
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
    model = MultiTaskModel(trunk, {task: nn.Linear(128, k) for task, k in DIGIT_TASK_CLASSES.items()})
    loss_fn = MultiTaskLoss(dict.fromkeys(tasks, F.cross_entropy), weights)  # sum_t w_t * loss_t
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(1, steps + 1):
        index = torch.randint(len(x), (32,))
        loss = loss_fn(model(x[index]), targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 3) == 0:
            print(f"step {step:4d}  " + "  ".join(f"{task} {value:.3f}" for task, value in loss_fn.last.items()))

    with torch.no_grad():
        outputs = model(x_test)
    truth = digit_tasks(y_test)
    accuracy = {task: (outputs[task].argmax(1) == truth[task]).float().mean().item() for task in tasks}
    print("test accuracy: " + ", ".join(f"{task} {value:.3f}" for task, value in accuracy.items()))
    return accuracy


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny model: one thread is fastest, and robust on a busy machine
    main()
