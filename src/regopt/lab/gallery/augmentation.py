"""Gallery entry ``augmentation``: the same MLP trained on the same 1000 MNIST-1D signals with and without
dataset augmentation (sec. 7.4: "the simplest way to reduce overfitting is to increase the size of the data").

Each training batch of the augmented run is shifted at random by up to ``shift`` positions (circularly;
:class:`regopt.regularize.SignalAugment`, the 1-D counterpart of shifting an image), so the network never
sees the same signal twice; validation signals are never augmented. Both runs start from the same
initialization and batch order (``augmentation.toml``); the third panel shows one training signal and
augmented copies of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from regopt.lab.gallery.base import (
    RUN_HEADERS,
    GalleryResult,
    base_config,
    run_row,
    single_threaded,
    variant,
    write_table,
)
from regopt.regularize import SignalAugment

ENTRY = "augmentation"
HEADERS = RUN_HEADERS
EXAMPLES = 3
"""Augmented copies (with different shifts) drawn in the figure's third panel."""


def example_copies(signal: torch.Tensor, augment: SignalAugment, count: int) -> list[tuple[str, np.ndarray]]:
    """``count`` augmented copies of one signal ``(1, L)`` that differ from it and from each other, labelled with
    their shift when the copy is a pure circular shift (random draws: a repeated shift would hide a line)."""
    original = signal[0]
    copies: list[tuple[str, np.ndarray]] = []
    seen: list[torch.Tensor] = []
    for _ in range(100 * count):
        copy = augment(signal, torch.zeros(1, dtype=torch.long))[0][0]
        if torch.equal(copy, original) or any(torch.equal(copy, other) for other in seen):
            continue
        seen.append(copy)
        shifts = [
            s for s in range(-len(original) // 2, len(original) // 2) if torch.equal(torch.roll(original, s), copy)
        ]
        copies.append((f"shifted by {shifts[0]:+d}" if shifts else f"augmented copy {len(copies) + 1}", copy.numpy()))
        if len(copies) == count:
            break
    return copies


@single_threaded
def augmentation(out: Path, progress: bool, *, epochs: int | None = None) -> GalleryResult:
    """MLP on MNIST-1D with and without random shifts of the training signals: augmentation narrows the gap."""
    from regopt.lab.gallery.figures.regularize import draw_signals, plot_on_off
    from regopt.lab.runs import run

    base = base_config(ENTRY, epochs)
    settings = base["regularize"]["augment_signal"]
    folder = Path(out) / ENTRY
    described = ", ".join(f"{k}={v}" for k, v in settings.items() if v not in (None, 0, 0.0))
    runs = [
        (
            "no augmentation",
            run(
                variant(base, ENTRY, "plain", {"regularize.augment_signal": None}),
                out=folder,
                force=True,
                progress=progress,
            ),
        ),
        (f"augmented ({described})", run(variant(base, ENTRY, "augmented"), out=folder, force=True, progress=progress)),
    ]
    rows = [run_row(label, r.summary) for label, r in runs]

    data = runs[1][1].experiment.data
    signal = data.x_train[:1].cpu()
    augment = SignalAugment(
        settings["shift"], settings.get("scale"), settings["noise"], generator=torch.Generator().manual_seed(1)
    )
    copies = example_copies(signal, augment, EXAMPLES)
    figure = folder / "curves.png"
    plot_on_off(
        [(label, r.history) for label, r in runs],
        figure,
        title=f"dataset augmentation: MLP on {len(data.x_train)} MNIST-1D signals",
        extra=lambda ax: draw_signals(
            ax,
            signal[0].numpy(),
            copies,
            title=f"a training signal (class {int(data.y_train[0])}) and {EXAMPLES} augmented copies",
        ),
    )
    digits = dict.fromkeys(HEADERS[1:], 3)
    table = write_table(folder / "table.md", HEADERS, rows, title="with and without augmentation", digits=digits)
    return GalleryResult(
        entry=ENTRY,
        files=[figure, table],
        numbers={
            "final val error without / with augmentation": f"{rows[0][2]:.3f} / {rows[1][2]:.3f}",
            "final train error without / with augmentation": f"{rows[0][1]:.3f} / {rows[1][1]:.3f}",
            "test error without / with augmentation": f"{rows[0][5]:.3f} / {rows[1][5]:.3f}",
        },
    )
