"""Figures of the sec. 8.4 / 8.7 gallery entries ``initialization``, ``batch_norm``, ``pretraining`` and
``curriculum``: activation and gradient scale through depth, validation curves, continuation, train/val curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from regopt.lab.report import draw_train_val, save_figure

STYLES = ("-", "--", "-.", ":")


def plot_depth_profiles(
    profiles: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], path: str | Path, *, title: str = ""
) -> None:
    """Rows: networks (ReLU, tanh); columns: activation std and gradient std against layer, log y, one line per
    initialization policy (the rows of :func:`regopt.init.activation_statistics`)."""
    fig, axes = plt.subplots(len(profiles), 2, figsize=(12, 4.2 * len(profiles)), squeeze=False)
    for row, (net, policies) in enumerate(profiles.items()):
        for col, (key, label) in enumerate((("activation_std", "activation std"), ("gradient_std", "gradient std"))):
            ax = axes[row][col]
            for i, (policy, stats) in enumerate(policies.items()):
                values = [max(s[key], 1e-30) for s in stats]
                ax.plot(
                    [s["layer"] for s in stats],
                    values,
                    color=f"C{i}",
                    linestyle=STYLES[i % len(STYLES)],
                    marker="o",
                    markersize=2.5,
                    label=policy,
                )
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("hidden layer (input side = 1)")
            ax.set_ylabel(label)
            ax.set_title(f"{net} network: {label} per layer")
            ax.grid(alpha=0.3, which="both")
    axes[0][1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_val_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str = "",
    boundaries: Sequence[int] = (),
    boundary_label: str = "",
) -> None:
    """Validation error against epoch, one line per run; dotted vertical lines at ``boundaries`` (epochs)."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for i, (label, values) in enumerate(curves.items()):
        epochs = range(1, len(values) + 1)
        ax.plot(epochs, values, color=f"C{i}", linestyle=STYLES[i % 2], marker="o", markersize=3, label=label)
    for j, epoch in enumerate(boundaries):
        ax.axvline(epoch + 0.5, color="gray", linestyle=":", linewidth=1, label=boundary_label if j == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    save_figure(fig, path)


def blurred(w: np.ndarray, sigma: float) -> np.ndarray:
    """E f(w + sigma eps) for f(w) = w^2 + 2 sin(5 w), eps ~ N(0, 1): w^2 + sigma^2 + 2 sin(5 w) exp(-12.5 sigma^2)."""
    return w**2 + sigma**2 + 2 * np.sin(5 * w) * math.exp(-12.5 * sigma**2)


def plot_continuation(result: Mapping[str, Any], path: str | Path) -> None:
    """Left: the blurred objectives f_sigma, with the continuation iterate at the end of each stage on its
    curve and plain gradient descent's end point on f. Right: w after each stage, both methods."""
    sigmas, trail, plain = result["sigmas"], result["path"], result["plain"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.5, 1]})
    grid = np.linspace(-2.2, 3.0, 1000)
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(sigmas)))
    for k, (sigma, color) in enumerate(zip(sigmas, colors, strict=True)):
        shown = k % 2 == 0 or k == len(sigmas) - 1
        if shown:
            left.plot(
                grid,
                blurred(grid, sigma),
                color=color,
                linewidth=2.2 if sigma == 0 else 1.2,
                label=f"sigma = {sigma:.2f}",
            )
        w = trail[k + 1]
        left.plot(w, blurred(np.array(w), sigma), "o", color=color, markeredgecolor="black", zorder=3)
    left.plot(
        [trail[k + 1] for k in range(len(sigmas))],
        [float(blurred(np.array(trail[k + 1]), s)) for k, s in enumerate(sigmas)],
        color="black",
        linewidth=0.8,
        label="continuation: w after each stage, on its f_sigma",
    )
    end = plain[-1]
    left.plot(end, blurred(np.array(end), 0.0), "X", color="red", markersize=11, zorder=4, label="plain GD ends here")
    left.axvline(result["start"], color="gray", linestyle=":", label=f"start w = {result['start']}")
    left.set_xlabel("w")
    left.set_ylabel("f_sigma(w) = E f(w + sigma eps)")
    left.set_title("f(w) = w^2 + 2 sin(5w), blurred by Gaussian weight noise")
    left.legend(fontsize="x-small", ncol=2)
    left.grid(alpha=0.3)
    stages = range(len(trail))
    right.plot(stages, trail, "o-", label="continuation (sigma 1 -> 0)")
    right.plot(stages, plain, "s--", color="red", label="plain gradient descent")
    right.axhline(result["global"], color="gray", linestyle=":", label=f"global minimum w = {result['global']:.2f}")
    right.set_xlabel(f"stage ({result['steps']} SGD steps each)")
    right.set_ylabel("w")
    right.set_title("where each method is after each stage")
    right.legend(fontsize="small")
    right.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def plot_train_val(
    runs: Sequence[tuple[str, Sequence[Mapping[str, float]]]], path: str | Path, *, title: str = ""
) -> None:
    """Error (left) and loss (right) against epoch from metrics rows, one color per run, validation solid and
    training dashed; the legend sits beside the axes, clear of the curves."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    for ax, metric in zip(axes, ("error", "loss"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        draw_train_val(ax, runs, metric)
        ax.set_ylabel(f"{metric} (train dashed)")
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
