"""Figures and tables of runs: the chapter's "Training vs. Test Set Error" curve, and run comparisons."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

from regopt.lab.atomic import atomic_write

Rows = Sequence[Mapping[str, float]]

UNITS = {"error rate": "error rate (fraction misclassified)", "mse": "MSE (mean squared error)"}
"""Axis labels of the error metrics, with what they count."""


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_curves(
    history: Rows, path: str | Path, *, title: str = "", error_label: str = "error rate"
) -> matplotlib.figure.Figure:
    """Train vs validation error (left) and loss (right) over epochs, the best validation epoch marked.

    For regression (``error_label`` "mse", or error columns equal to the loss columns) the error *is* the loss:
    one panel. Returns the (saved and closed) figure."""
    same = error_label.lower() == "mse" or all(
        row["train_error"] == row["train_loss"] and row["val_error"] == row["val_loss"] for row in history
    )
    panels = [("error", error_label)] if same else [("error", error_label), ("loss", "loss")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + (1 if same else 0), 4), squeeze=False)
    epochs = [row["epoch"] for row in history]
    best = min(history, key=lambda row: row["val_error"]) if history else None
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        ax.plot(epochs, [row[f"train_{metric}"] for row in history], label="train", color="tab:blue")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], label="validation", color="tab:red")
        if best is not None:
            ax.axvline(
                best["epoch"],
                color="gray",
                linestyle=":",
                label=f"best val error (epoch {int(best['epoch'])})",
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(UNITS.get(label, label))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(curves_finding(history, title, error_label))
    save_figure(fig, path)
    return fig


def curves_finding(history: Rows, name: str = "", error_label: str = "error rate") -> str:
    """The curves figure's title: what they show, e.g. ``tiny: best val error rate 0.076 at epoch 12; final
    gap 0.05 (val - train)``; just the name (or "training vs validation") when there is no epoch."""
    head = name or "training vs validation"
    finite = [row for row in history if math.isfinite(row["val_error"])]
    if not finite:
        return head
    best, last = min(finite, key=lambda row: row["val_error"]), history[-1]
    gap = last["val_error"] - last["train_error"]
    return (
        f"{head}: best val {error_label} {best['val_error']:.3g} at epoch {int(best['epoch'])}; "
        f"final gap {gap:.3g} (val - train)"
    )


def draw_train_val(ax: Axes, runs: Sequence[tuple[str, Rows]], metric: str = "error") -> None:
    """On ``ax``: each run's validation (solid) and train (dashed) ``metric`` against epoch, one color per run."""
    for i, (label, history) in enumerate(runs):
        color = f"C{i % 10}"
        epochs = [row["epoch"] for row in history]
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], color=color, label=f"{label}: validation")
        ax.plot(
            epochs, [row[f"train_{metric}"] for row in history], "--", color=color, alpha=0.7, label=f"{label}: train"
        )
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def plot_compare(
    runs: Sequence[tuple[str, Rows]],
    path: str | Path,
    *,
    error_label: str = "error rate",
    metrics: Sequence[str] | None = None,
    title: str = "",
) -> matplotlib.figure.Figure:
    """Overlay train (dashed) and validation (solid) error curves of several runs, one color per run.

    ``metrics`` (one per run, e.g. "error rate" or "mse") puts runs of different metrics on separate panels,
    never on one axis; without it every run shares one panel labelled ``error_label``. ``title`` (what the
    comparison shows) goes above the panels. Returns the figure."""
    names = list(metrics) if metrics is not None else [error_label] * len(runs)
    panels = list(dict.fromkeys(names))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, metric in zip(axes[0], panels, strict=True):
        draw_train_val(ax, [run for run, name in zip(runs, names, strict=True) if name == metric])
        ax.set_ylabel(UNITS.get(metric, metric))
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


def plot_parameter_curve(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, parameter: str, log: bool = False
) -> None:
    """Final training and validation error against a hyperparameter (e.g. alpha), one point per trial: large
    alpha under-fits (both errors high), small alpha over-fits (a wide gap)."""
    points = sorted(
        (r for r in rows if r.get(parameter) is not None and r.get("final_val_error") is not None),
        key=lambda r: r[parameter],
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r[parameter] for r in points]
    ax.plot(xs, [r["final_train_error"] for r in points], "o-", color="tab:blue", label="train")
    ax.plot(xs, [r["final_val_error"] for r in points], "o-", color="tab:red", label="validation")
    pruned = [r for r in points if r.get("state") == "pruned"]
    if pruned:
        ax.scatter(
            [r[parameter] for r in pruned],
            [r["final_val_error"] for r in pruned],
            marker="x",
            color="black",
            zorder=3,
            label="pruned (stopped early)",
        )
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(parameter)
    ax.set_ylabel("final error")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def plot_against_steps(
    runs: Sequence[tuple[str, Rows]],
    path: str | Path,
    *,
    metric: str = "val_error",
    ylabel: str = "validation error",
    title: str = "",
    chance: float | None = None,
) -> None:
    """One line per run of ``metric`` against optimizer steps (the ``step`` column), legend beside the axes."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (label, history) in enumerate(runs):
        ax.plot(
            [row["step"] for row in history],
            [row[metric] for row in history],
            color=f"C{i % 10}",
            linestyle=("-", "--")[i % 2],  # neighbours differ in style as well as color
            marker="o",
            markersize=3,
            label=label,
        )
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title)
    save_figure(fig, path)


def _cells(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: Mapping[str, int]) -> list[list[str]]:
    return [[_fmt(v, digits.get(h, 4)) for h, v in zip(headers, row, strict=True)] for row in rows]


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: Mapping[str, int] | None = None
) -> str:
    """A GitHub-flavoured markdown table, numeric columns right-aligned; floats get ``digits[header]`` (4)."""
    cells = _cells(headers, rows, digits or {})
    numeric = [all(isinstance(row[j], (int, float)) for row in rows) for j in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


class FittingTable:
    """The first of several drawings of one table that fits the console (the last one where none does): e.g.
    with its box, then without rules (two spaces between columns instead of three characters), so that a narrow
    terminal shows whole names and numbers instead of ``…``."""

    def __init__(self, *variants: Callable[[], Table]) -> None:
        self.variants = variants

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.update_width(10**6)
        for build in self.variants:
            table = build()
            if table.__rich_measure__(console, wide).maximum <= options.max_width:
                break
        yield table


def rich_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str = "",
    digits: Mapping[str, int] | None = None,
    caption: str = "",
) -> FittingTable:
    """The same rows as :func:`markdown_table`, as a rich table for the terminal. Numeric columns are as narrow
    as their cells, their headers wrapped onto several lines (also after ``=``, so that ``FGSM eps=0.05`` keeps
    its distinguishing ``0.05`` in view); text columns fold rather than cut, so nothing reads ``…``."""
    cells = _cells(headers, rows, digits or {})
    return FittingTable(*(partial(_build, headers, cells, rows, title, caption, style) for style in STYLES))


STYLES: tuple[box.Box | None, ...] = (box.HEAVY_HEAD, None)
"""How :func:`rich_table` draws, in order of preference: boxed, then with no rules when the box does not fit."""


def _build(
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    rows: Sequence[Sequence[Any]],
    title: str,
    caption: str,
    style: box.Box | None,
) -> Table:
    table = Table(title=title or None, caption=caption or None, box=style, pad_edge=style is not None)
    for j, header in enumerate(headers):
        if _numeric([row[j] for row in rows]):
            width = max(len(row[j]) for row in cells)
            lines = wrap_header(header, width)
            width = max(width, *(len(line) for line in lines))
            table.add_column("\n".join(lines), justify="right", no_wrap=True, min_width=width, max_width=width)
        else:
            table.add_column(header, justify="left", overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def _numeric(values: Sequence[Any]) -> bool:
    """A column of numbers, some perhaps missing (None, shown as "-")."""
    return any(v is not None for v in values) and all(v is None or isinstance(v, (int, float)) for v in values)


def wrap_header(header: str, width: int) -> list[str]:
    """``header`` in lines of at most ``width`` characters where it can be, broken at spaces and after ``=``
    (a word longer than ``width`` keeps its own line)."""
    tokens = [t for word in header.split() for t in re.split(r"(?<==)", word) if t]
    lines: list[str] = []
    for token in tokens:
        glue = "" if lines and lines[-1].endswith("=") else " "
        if lines and len(lines[-1]) + len(glue) + len(token) <= width:
            lines[-1] += glue + token
        else:
            lines.append(token)
    return lines or [""]
