"""Figures and tables of runs: the seed's "Training vs. Test Set Error" curve, and run comparisons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from rich.table import Table

from regopt.lab.atomic import atomic_write

Rows = Sequence[Mapping[str, float]]


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_curves(history: Rows, path: str | Path, *, title: str = "", error_label: str = "error rate") -> None:
    """Train vs validation error (left) and loss (right) over epochs, the best validation epoch marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [row["epoch"] for row in history]
    best = min(history, key=lambda row: row["val_error"]) if history else None
    for ax, metric, label in ((axes[0], "error", error_label), (axes[1], "loss", "loss")):
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
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "training vs validation")
    save_figure(fig, path)


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


def plot_compare(runs: Sequence[tuple[str, Rows]], path: str | Path, *, error_label: str = "error rate") -> None:
    """Overlay train (dashed) and validation (solid) error curves of several runs, one color per run."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_train_val(ax, runs)
    ax.set_ylabel(error_label)
    ax.legend(fontsize="small")
    save_figure(fig, path)


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


def compare_table(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> Table:
    """Best and final validation error, generalization gap, epochs and wall time, one row per run."""
    table = Table(title="run comparison")
    for column in (
        "run",
        "best val",
        "final val",
        "final train",
        "gap (val-train)",
        "test",
        "epochs",
        "wall s",
    ):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, s in runs:
        table.add_row(
            label,
            _fmt(s.get("best_val_error")),
            _fmt(s.get("final_val_error")),
            _fmt(s.get("final_train_error")),
            _fmt(s.get("generalization_gap")),
            _fmt(s.get("test_error")),
            _fmt(s.get("epochs")),
            _fmt(s.get("wall_time_s"), 1),
        )
    return table


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


def rich_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "", digits: Mapping[str, int] | None = None
) -> Table:
    """The same rows as :func:`markdown_table`, as a rich table for the terminal. Numeric columns are as narrow
    as their cells (their headers wrap), so that text columns keep the width of a narrow terminal."""
    cells = _cells(headers, rows, digits or {})
    table = Table(title=title or None)
    for j, header in enumerate(headers):
        numeric = bool(rows) and all(isinstance(row[j], (int, float)) for row in rows)
        width = max(*(len(word) for word in header.split()), *(len(row[j]) for row in cells)) if numeric else None
        table.add_column(header, justify="right" if numeric else "left", no_wrap=j == 0, max_width=width)
    for row in cells:
        table.add_row(*row)
    return table
