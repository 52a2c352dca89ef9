"""Figures of the gallery entry ``adversarial``: accuracy under attack against eps, and attacked digits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from torch import Tensor

from regopt.lab.report import save_figure


def plot_robustness(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    path: Path,
    *,
    eps_grid: Sequence[float],
    train_eps: float,
    pgd_steps: int,
    title: str,
) -> None:
    """One panel per attack (``curves[attack][model]``, accuracy at each eps of ``eps_grid``), the training eps
    and chance marked."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (kind, per_model) in zip(axes, curves.items(), strict=True):
        for i, (name, accuracy) in enumerate(per_model.items()):
            ax.plot(eps_grid, accuracy, marker="o", markersize=4, color=f"C{i}", label=name)
        ax.axvline(train_eps, color="gray", linestyle=":", label=f"training eps = {train_eps}")
        ax.axhline(0.1, color="black", linestyle="--", linewidth=0.8, alpha=0.5, label="chance (10 classes)")
        steps = "" if kind == "FGSM" else f" ({pgd_steps} steps)"
        ax.set_title(f"{kind}{steps}, L-infinity ball")
        ax.set_xlabel("attack eps (pixel range [0, 1])")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("test accuracy under attack")
    axes[0].legend(fontsize="small", loc="upper right")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_examples(
    x: Tensor,
    y: Tensor,
    clean_predictions: Mapping[str, Tensor],
    attacked: Mapping[str, tuple[Tensor, Tensor]],
    path: Path,
    *,
    eps: float,
) -> None:
    """Columns: digits; rows: the clean digit (titled with each model's prediction), then per model of
    ``attacked`` (``name: (attacked digits, predictions on them)``) the perturbation and the attacked digit."""
    count = len(x)
    rows = 1 + 2 * len(attacked)  # the clean digit, then perturbation and attacked digit per model
    fig, axes = plt.subplots(rows, count, figsize=(1.6 * count, 1.7 * rows))
    labels = ["test digit"]
    for j in range(count):
        ax = axes[0, j]
        ax.imshow(x[j, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        guesses = " / ".join(str(int(p[j])) for p in clean_predictions.values())
        ax.set_title(f"label {int(y[j])}, predicted {guesses}", fontsize=7)
    for i, (name, (x_adv, predicted)) in enumerate(attacked.items()):
        labels += [f"perturbation\nagainst {name}", f"attacked digit:\n{name} says"]
        for j in range(count):
            axes[1 + 2 * i, j].imshow((x_adv - x)[j, 0].numpy(), cmap="RdBu_r", vmin=-eps, vmax=eps)
            ax = axes[2 + 2 * i, j]
            ax.imshow(x_adv[j, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
            right = bool(predicted[j] == y[j])
            ax.set_title(
                f"{int(predicted[j])} ({'right' if right else 'wrong'})", fontsize=8, color="black" if right else "red"
            )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, label in zip(axes[:, 0], labels, strict=True):
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle(
        f"PGD attacks at eps = {eps} against each model (red: more ink, blue: less; "
        f"first row: predictions of {' / '.join(attacked)})",
        fontsize=9,
    )
    save_figure(fig, path)
