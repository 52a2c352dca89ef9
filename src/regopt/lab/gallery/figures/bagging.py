"""Figures of the gallery entry ``bagging``: members against the ensemble on held-out digits, and accuracy
against the number of members."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from torch import Tensor

from regopt.lab.report import save_figure


def plot_members(
    x: Tensor,
    y: Tensor,
    predictions: Tensor,
    ensemble: Tensor,
    labels: list[str],
    path: Path,
    *,
    classes: Sequence[int],
) -> None:
    """Rows = members (then the ensemble), columns = examples: each image titled with that row's prediction
    (``classes[i]`` is the digit that class index i stands for)."""
    rows, cols = predictions.shape[0] + 1, len(x)
    height = 1.15 * rows + 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 * cols + 2.4, height), squeeze=False)
    fig.subplots_adjust(hspace=0.45, wspace=0.15, top=1 - 1.0 / height)
    for r in range(rows):
        guesses = predictions[r] if r < rows - 1 else ensemble
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(x[c].reshape(8, 8).numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            right = int(guesses[c]) == int(y[c])
            color = "tab:green" if right else "tab:red"
            ax.set_title(f"{classes[int(guesses[c])]}" + ("" if right else " ✗"), color=color, fontsize=10, pad=2)
            for spine in ax.spines.values():
                spine.set_color(color if r == rows - 1 or not right else "lightgray")
                spine.set_linewidth(2.0 if r == rows - 1 or not right else 0.8)
            if c == 0:
                ax.set_ylabel(labels[r], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(
        "bagging on 9, 6, 8: each member misreads a few held-out digits (red);\n"
        "the ensemble, which averages their probabilities, reads them right (bottom row)",
        fontsize=10,
        y=1 - 0.15 / height,
        va="top",
    )
    save_figure(fig, path)


def plot_accuracy_vs_k(rows: list[tuple[float, ...]], member_acc: Tensor, path: Path) -> None:
    """Ensemble accuracy (mean probability, vote) and mean member accuracy against k, the members' range shaded."""
    ks = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(ks, [r[1] for r in rows], "o-", color="tab:green", label="ensemble (mean probability)")
    ax.plot(ks, [r[2] for r in rows], "s--", color="tab:olive", label="ensemble (majority vote)")
    ax.plot(ks, [r[3] for r in rows], "o-", color="tab:blue", label="its members on their own (mean)")
    lo, hi = member_acc.min().item(), member_acc.max().item()
    ax.axhspan(lo, hi, color="tab:blue", alpha=0.12, label=f"range of the {len(member_acc)} members")
    ax.set_xlabel("members k in the ensemble")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("bagging on 9, 6, 8: accuracy against the number of members", fontsize=10)
    save_figure(fig, path)
