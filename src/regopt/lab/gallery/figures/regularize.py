"""Figures of chapter 7's regularizers for the demo gallery: weight histograms, the alpha curve, on/off curves,
early stopping, multi-task curves and the ridge path (the run-level figures are in :mod:`regopt.lab.report`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from regopt.lab.report import draw_train_val, save_figure

Rows = Sequence[Mapping[str, float]]


def plot_weight_histograms(panels: Sequence[tuple[str, np.ndarray]], path: str | Path, *, title: str = "") -> None:
    """One histogram per run of its weights on shared bins (log-count y); exact zeros are drawn as a black bar at
    0, apart from the histogram of the nonzero weights, and their fraction is written in each panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.9), sharex=True, sharey=True, squeeze=False)
    limit = max(float(np.abs(w).max()) for _, w in panels) * 1.02
    bins = np.linspace(-limit, limit, 61)
    for i, (ax, (label, weights)) in enumerate(zip(axes[0], panels, strict=True)):
        zeros = int((weights == 0).sum())
        ax.hist(weights[weights != 0], bins=bins, color=f"C{i}", alpha=0.8, label="nonzero weights")
        if zeros:
            ax.bar(0.0, zeros, width=bins[1] - bins[0], bottom=0.8, color="black", label="exact zeros")
        ax.text(
            0.03,
            0.96,
            f"exact zeros: {zeros / weights.size:.1%}\n({zeros:,} of {weights.size:,})",
            transform=ax.transAxes,
            va="top",
            fontsize="small",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "lightgray"},
        )
        ax.set_yscale("log")
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("weight value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper right")
    axes[0][0].set_ylabel("number of weights (log scale)")
    axes[0][0].set_ylim(0.8, axes[0][0].get_ylim()[1] * 30)  # headroom for the text and the legend
    fig.suptitle(title or "weights after training", y=1.04)
    save_figure(fig, path)


def plot_alpha_curve(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    parameter: str = "alpha",
    title: str = "",
    error_label: str = "error rate",
    reference: float | None = None,
) -> None:
    """Final training and validation error against the penalty weight (log x), the best validation alpha marked:
    small alpha over-fits (train error far below validation error), large alpha under-fits (both high)."""
    points = sorted(rows, key=lambda r: r[parameter])
    xs = [r[parameter] for r in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(xs, [r["final_train_error"] for r in points], "o--", color="tab:blue", label="train")
    ax.plot(xs, [r["final_val_error"] for r in points], "o-", color="tab:red", label="validation")
    best = min(points, key=lambda r: r["final_val_error"])
    ax.axvline(
        best[parameter], color="gray", linestyle=":", label=f"lowest validation error ({parameter}={best[parameter]:g})"
    )
    if reference is not None:
        ax.axhline(reference, color="tab:red", linestyle=":", alpha=0.5, label="validation, no penalty")
    ax.text(0.02, 0.5, "over-fitting\n(small alpha)", transform=ax.transAxes, color="dimgray", va="center")
    ax.text(0.98, 0.5, "under-fitting\n(large alpha)", transform=ax.transAxes, color="dimgray", va="center", ha="right")
    ax.set_xscale("log")
    ax.set_xlabel(f"{parameter} (log scale)")
    ax.set_ylabel(f"final {error_label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper center")
    ax.set_title(title or f"selecting {parameter}")
    save_figure(fig, path)


def plot_on_off(
    runs: Sequence[tuple[str, Rows]],
    path: str | Path,
    *,
    title: str = "",
    error_label: str = "error rate",
    extra: Callable[[Axes], None] | None = None,
) -> None:
    """Error (left) and loss (right) against epoch, one color per run, train dashed and validation solid; ``extra``
    draws a third panel (e.g. examples of the augmentation)."""
    fig, axes = plt.subplots(1, 3 if extra else 2, figsize=(15 if extra else 10.5, 4.3), squeeze=False)
    for ax, metric, ylabel in ((axes[0][0], "error", error_label), (axes[0][1], "loss", "loss")):
        draw_train_val(ax, runs, metric)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
    if extra:
        extra(axes[0][2])
    fig.suptitle(title)
    save_figure(fig, path)


def draw_signals(
    ax: Axes, original: np.ndarray, augmented: Sequence[tuple[str, np.ndarray]], *, title: str = ""
) -> None:
    """One 1-D training signal (thick) and labelled augmented copies of it (thin), for :func:`plot_on_off`'s
    ``extra``."""
    positions = np.arange(len(original))
    ax.plot(positions, original, color="black", linewidth=2.2, label="original")
    for i, (label, signal) in enumerate(augmented):
        ax.plot(positions, signal, color=f"C{i + 2}", linewidth=1.2, label=label)
    ax.set_xlabel("position")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    low, high = ax.get_ylim()
    ax.set_ylim(low - 0.35 * (high - low), high)  # room for the legend below the signals
    ax.legend(fontsize="small", loc="lower center", ncol=2)
    ax.set_title(title, fontsize="medium")


def plot_early_stopping(
    history: Rows,
    path: str | Path,
    *,
    best_epoch: int,
    stopped_epoch: int | None,
    monitor: str,
    patience: int,
    reference: Rows = (),
    title: str = "",
) -> None:
    """Loss (left) and error (right) against epoch with the restored (best) epoch and the stop epoch marked; an
    optional ``reference`` run without early stopping is drawn faintly past the stop, to show what it avoided."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    last = int(history[-1]["epoch"]) if history else 0
    for ax, metric, ylabel in ((axes[0], "loss", "loss"), (axes[1], "error", "error rate")):
        later = [row for row in reference if row["epoch"] >= last]
        if later:
            epochs = [row["epoch"] for row in later]
            for split, color in (("val", "tab:red"), ("train", "tab:blue")):
                ax.plot(epochs, [row[f"{split}_{metric}"] for row in later], ":", color=color, alpha=0.45)
            ax.plot([], [], ":", color="gray", label="had training gone on (same run, no early stopping)")
        epochs = [row["epoch"] for row in history]
        ax.plot(epochs, [row[f"train_{metric}"] for row in history], "--", color="tab:blue", label="train")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], color="tab:red", label="validation")
        ax.axvline(
            best_epoch, color="tab:green", linewidth=2, label=f"restored weights: epoch {best_epoch} (best {monitor})"
        )
        if stopped_epoch is not None:
            ax.axvspan(best_epoch, stopped_epoch, color="tab:orange", alpha=0.12, label=f"patience: {patience} epochs")
            ax.axvline(stopped_epoch, color="black", linestyle="--", label=f"stopped: epoch {stopped_epoch}")
        best = next(row for row in history if int(row["epoch"]) == best_epoch)
        ax.plot([best_epoch], [best[f"val_{metric}"]], "o", color="tab:green", markersize=7)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=3, fontsize="small")
    fig.suptitle(title or f"early stopping on {monitor}")
    save_figure(fig, path)


def plot_seed_bands(
    curves: Mapping[str, Sequence[Sequence[float]]],
    path: str | Path,
    *,
    ylabel: str,
    title: str = "",
    zoom_from: int | None = None,
) -> None:
    """A per-epoch metric of several models over several seeds: the mean (line) and the seeds' range (band); with
    ``zoom_from``, a second panel shows the epochs from there on at a finer scale."""
    fig, axes = plt.subplots(1, 2 if zoom_from else 1, figsize=(13 if zoom_from else 7.5, 4.5), squeeze=False)
    for panel, ax in enumerate(axes[0]):
        for i, (label, runs) in enumerate(curves.items()):
            values = np.asarray(runs, dtype=float)  # (seeds, epochs)
            epochs = np.arange(1, values.shape[1] + 1)
            keep = epochs >= (zoom_from if panel else 1)
            mean = values.mean(axis=0)
            ax.plot(epochs[keep], mean[keep], color=f"C{i}", label=f"{label} (mean of {len(values)} seeds)")
            low, high = values.min(axis=0)[keep], values.max(axis=0)[keep]
            ax.fill_between(epochs[keep], low, high, color=f"C{i}", alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.set_title(f"from epoch {zoom_from} on (zoomed)" if panel else "all epochs", fontsize="medium")
    axes[0][0].legend(fontsize="small", title="band: lowest to highest seed", title_fontsize="small")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_ridge_path(
    alphas: Sequence[float],
    distances: Mapping[str, Sequence[float]],
    conditions: Sequence[float],
    path: str | Path,
    *,
    title: str = "",
    singular: float | None = None,
) -> None:
    """Left: ||w_ridge(alpha) - X^+ y|| against alpha, one line per solver (log-log). Right: the condition number
    of X'X + alpha I against alpha (log-log), with ``singular`` = cond(X'X) written in if given."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for i, (label, values) in enumerate(distances.items()):
        axes[0].loglog(alphas, values, "o-" if i == 0 else "s--", color=f"C{i}", markersize=4, label=label)
    axes[0].set_ylabel("distance to the pseudo-inverse solution  ||w(alpha) - X⁺y||")
    axes[0].set_title("ridge solution -> pseudo-inverse solution as alpha -> 0", fontsize="medium")
    axes[1].loglog(alphas, conditions, "o-", color="tab:purple", markersize=4, label="cond(X'X + alpha I)")
    if singular is not None:
        axes[1].text(
            0.97, 0.6, f"alpha = 0: cond(X'X) = {singular:.2g}\n(singular: rank n < d)", transform=axes[1].transAxes,
            ha="right", fontsize="small", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "lightgray"},
        )  # fmt: skip
    axes[1].set_ylabel("condition number")
    axes[1].set_title("alpha I makes X'X invertible, and better conditioned", fontsize="medium")
    for ax in axes:
        ax.set_xlabel("alpha (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(title)
    save_figure(fig, path)
