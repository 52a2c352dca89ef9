"""Figures of learning-rate schedules for the demo gallery: the learning rate and the validation error of a few
runs, epoch by epoch (``warmup_and_plateau``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from regopt.lab.report import save_figure

Rows = Sequence[Mapping[str, float]]


def plot_lr_and_error(
    runs: Sequence[tuple[str, Rows]], path: str | Path, *, title: str = "", chance: float | None = None
) -> None:
    """Two panels over epochs, one line per run: the learning rate each epoch started with (log scale) and the
    validation error after it; a run that stopped early (diverged) simply ends."""
    fig, (lr_ax, error_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (label, history) in enumerate(runs):
        epochs = [row["epoch"] for row in history]
        style = {"color": f"C{i % 10}", "linestyle": ("-", "--", ":")[i % 3], "marker": "o", "markersize": 3}
        lr_ax.plot(epochs, [row["lr"] for row in history], label=label, **style)
        error_ax.plot(epochs, [row["val_error"] for row in history], label=label, **style)
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate at the epoch's start")
    error_ax.set_ylabel("validation error")
    if chance is not None:
        error_ax.axhline(chance, color="gray", linestyle=":", linewidth=1, label=f"chance ({chance:.2f})")
    for ax in (lr_ax, error_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    error_ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
