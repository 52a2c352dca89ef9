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

Each model is an ordinary run (``[multitask]`` in the config for the multi-task one), written under the
entry's directory, so ``regopt run`` reproduces or resumes any of them alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from regopt.lab.gallery.base import GalleryResult, base_config, run_seeds, single_threaded, write_table

ENTRY = "multitask"
TRAIN_SIZE = 50
WIDTH = 128
EPOCHS = 150
BATCH_SIZE = 25
LR = 1e-3
SEEDS = (0, 1, 2)
HEADERS = ("model", "tasks trained", "digit val error (mean)", "seeds' range", "digit test error (mean)")


@single_threaded
def multitask(out: Path, progress: bool, *, epochs: int = EPOCHS, seeds: Sequence[int] = SEEDS) -> GalleryResult:
    """Digits (50 images): shared trunk + heads for digit, parity, >4 vs a digit-only model; digit error of both."""
    from regopt.lab.gallery.figures.regularize import plot_seed_bands
    from regopt.regularize import DIGIT_TASK_CLASSES

    del progress  # a few seconds a run: no progress bar
    folder = Path(out) / ENTRY
    base = base_config(ENTRY, epochs)
    models = {"single-task": ("digit",), "multi-task": tuple(DIGIT_TASK_CLASSES)}
    variants = {  # one task: the plain network, without [multitask]
        label: (label, {"multitask": {"tasks": list(tasks)} if len(tasks) > 1 else None})
        for label, tasks in models.items()
    }
    runs = run_seeds(base, ENTRY, variants, seeds, folder)
    curves = {label: [[row["val_error"] for row in r.history] for r in runs[label]] for label in models}
    tests = {label: [r.summary["test_error"] for r in runs[label]] for label in models}
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
