"""Gallery entry ``multitask``: a shared trunk trained on three tasks vs the same network trained on one.

Digits with only :data:`TRAIN_SIZE` training images carry three related labels (:func:`regopt.regularize.
digit_tasks`): the digit (10 classes), its parity and whether it is greater than 4. The multi-task model is a
shared trunk (the generic parameters, an MLP with two hidden layers) with one linear head per task (the
task-specific parameters), trained on the sum of the three cross-entropies; the single-task model is the same
trunk with the digit head alone. Both start from the same trunk initialization and see the same batches for
the same number of epochs, and both are judged on the digit task only. Repeated over :data:`SEEDS`.

Whether the auxiliary tasks help depends on the data: here they carry no label the digit does not already
determine, and the gain (if any) is a few points of error at this tiny training size and vanishes with more
data (at 100 images the two were within noise in our trials). The table reports what this run measured.

The model returns a dict of outputs, which the lab's Trainer (one output, one loss) does not expect, so the
loop is written out here: it is the textbook loop with :class:`~regopt.regularize.MultiTaskLoss`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regopt.lab.gallery.base import GalleryResult, single_threaded, write_table

ENTRY = "multitask"
TRAIN_SIZE = 50
WIDTH = 128
EPOCHS = 150
BATCH_SIZE = 25
LR = 1e-3
SEEDS = (0, 1, 2)
HEADERS = ("model", "tasks trained", "digit val error (mean)", "seeds' range", "digit test error (mean)")


def make_model(tasks: Sequence[str], seed: int, input_dim: int = 64) -> nn.Module:
    """Shared trunk (seeded first, so identical for any tasks) and one linear head per task."""
    from regopt.regularize import DIGIT_TASK_CLASSES, MultiTaskModel

    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(input_dim, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU())
    return MultiTaskModel(trunk, {task: nn.Linear(WIDTH, DIGIT_TASK_CLASSES[task]) for task in tasks})


@torch.no_grad()
def digit_error(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    return (model(x)["digit"].argmax(dim=1) != y).double().mean().item()


def train(data, tasks: Sequence[str], seed: int, epochs: int) -> tuple[nn.Module, list[float]]:
    """Adam on the summed task losses; returns the model and its digit validation error after each epoch."""
    from regopt.regularize import MultiTaskLoss, digit_tasks

    model = make_model(tasks, seed, data.x_train.shape[1])
    loss_fn = MultiTaskLoss(dict.fromkeys(tasks, F.cross_entropy))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    targets = digit_tasks(data.y_train)
    order = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        model.train()
        permutation = torch.randperm(len(data.x_train), generator=order)
        for index in permutation.split(BATCH_SIZE):
            loss = loss_fn(model(data.x_train[index]), {task: targets[task][index] for task in tasks})
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        curve.append(digit_error(model, data.x_val, data.y_val))
    return model, curve


@single_threaded
def multitask(out: Path, progress: bool, *, epochs: int = EPOCHS, seeds: Sequence[int] = SEEDS) -> GalleryResult:
    """Digits (50 images): shared trunk + heads for digit, parity, >4 vs a digit-only model; digit error of both."""
    from regopt.lab.config import DigitsData
    from regopt.lab.data import load_dataset
    from regopt.lab.gallery.figures.regularize import plot_seed_bands
    from regopt.regularize import DIGIT_TASK_CLASSES

    del progress  # a few seconds in all: no progress bar
    data = load_dataset(DigitsData(name="digits", train_size=TRAIN_SIZE))
    models = {"single-task": ("digit",), "multi-task": tuple(DIGIT_TASK_CLASSES)}
    curves: dict[str, list[list[float]]] = {label: [] for label in models}
    tests: dict[str, list[float]] = {label: [] for label in models}
    for seed in seeds:
        for label, tasks in models.items():
            model, curve = train(data, tasks, seed, epochs)
            curves[label].append(curve)
            tests[label].append(digit_error(model, data.x_test, data.y_test))
    finals = {label: [curve[-1] for curve in runs] for label, runs in curves.items()}
    rows = [
        (
            label,
            ", ".join(tasks),
            statistics.mean(finals[label]),
            f"{min(finals[label]):.3f}-{max(finals[label]):.3f}",
            statistics.mean(tests[label]),
        )
        for label, tasks in models.items()
    ]

    folder = Path(out) / ENTRY
    figure = folder / "digit_error.png"
    plot_seed_bands(
        {f"{label} ({', '.join(tasks)})": curves[label] for label, tasks in models.items()},
        figure,
        ylabel="digit validation error",
        zoom_from=epochs // 3,
        title=f"multi-task learning: {TRAIN_SIZE} training digits, shared trunk [{WIDTH}, {WIDTH}]",
    )
    digits = {"digit val error (mean)": 3, "digit test error (mean)": 3}
    table = write_table(folder / "table.md", HEADERS, rows, title=f"digit error after {epochs} epochs", digits=digits)
    single, multi = statistics.mean(finals["single-task"]), statistics.mean(finals["multi-task"])
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table],
        numbers={
            "digit val error, single-task": single,
            "digit val error, multi-task": multi,
            "multi-task minus single-task": multi - single,
            "seeds": len(seeds),
        },
    )
