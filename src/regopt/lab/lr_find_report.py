"""What ``regopt lr-find`` reports: which of the three rates to pick and why, the table, the figure, the csv."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from regopt.lab.atomic import write_csv
from regopt.lab.lr_find import CurvatureRates, LRFindResult
from regopt.lab.report import save_figure

__all__ = ["Recommendation", "finding", "plot_lr_find", "rate_rows", "recommend", "sets_own_step", "write_lr_find_csv"]


@dataclass(frozen=True)
class Recommendation:
    """The rate to pick, which of the three it is, and why."""

    lr: float
    source: str
    """``"range test"`` or ``"2 / lambda_max"``."""
    reason: str
    notes: list[str] = field(default_factory=list)


def _plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """Whether each step is ``theta - lr g`` (SGD without momentum), the steps the curvature rates are for."""
    from regopt.optim import SGD

    if not isinstance(optimizer, (SGD, torch.optim.SGD)):
        return False
    return all(not group.get("momentum", 0.0) for group in optimizer.param_groups)


def sets_own_step(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` chooses its step length itself, ``lr`` only scaling it: Newton and HessianFree (a
    solve of the quadratic model, with damping), and the closure methods with a line search (L-BFGS, BFGS, CG)."""
    from regopt.optim import HessianFree, Newton, needs_closure

    if isinstance(optimizer, (Newton, HessianFree)):
        return True
    searched = getattr(optimizer, "line_search", None) or optimizer.defaults.get("line_search_fn")  # torch's LBFGS
    return needs_closure(optimizer) and searched is not None


def recommend(result: LRFindResult, rates: CurvatureRates, optimizer: torch.optim.Optimizer) -> Recommendation:
    """Which of the three rates to train with, and why.

    Plain SGD: the range test's suggestion where it lies at or below ``2 / lambda_max`` (stable in every
    direction, and the sweep saw the loss fall there), else ``2 / lambda_max`` (beyond it the steps along the top
    eigenvector grow). ``2 g'g / g'Hg`` is never picked: it is at least ``2 / lambda_max`` and only bounds the
    first step along g. An optimizer that sets its own step length (:func:`sets_own_step`): lr 1, the full step.
    Any other optimizer (momentum, per-parameter scaling): the range test's suggestion, since
    the curvature rates are the limits of plain SGD steps and the sweep ran the configured optimizer.
    """
    notes = []
    if not result.diverged:
        notes.append(f"the loss never diverged up to {result.stop_lr:.3g}: a larger --max may move the suggestion")
    if rates.along_gradient == math.inf:
        notes.append("g'Hg <= 0 at these weights: no curvature limit along the gradient")
    suggestion, cap = result.suggestion, rates.any_direction
    name = type(optimizer).__name__
    if sets_own_step(optimizer):
        reason = (
            f"{name} chooses its step length itself (a line search, or the solve of its quadratic model) and lr "
            "scales it: 1, the full step, is the usual choice; the range test and the curvature rates are for "
            "first-order steps"
        )
        return Recommendation(1.0, "full step", reason, notes)
    if not _plain_sgd(optimizer):
        reason = (
            f"the curvature rates are the stable rates of plain SGD steps; {name} with its momentum or "
            "per-parameter scaling has other limits, and the range test ran it as configured"
        )
        return Recommendation(suggestion, "range test", reason, notes)
    if not math.isfinite(cap) or suggestion <= cap:
        reason = "plain SGD: it lies below 2 / lambda_max, so every direction is stable, and the loss fell there"
        return Recommendation(suggestion, "range test", reason, notes)
    reason = (
        f"plain SGD: the range test's {suggestion:.3g} exceeds 2 / lambda_max, where steps along the top "
        "eigenvector grow; 2 / lambda_max is the largest rate stable in every direction at these weights"
    )
    return Recommendation(cap, "2 / lambda_max", reason, notes)


def rate_rows(result: LRFindResult, rates: CurvatureRates) -> list[tuple[str, float, str]]:
    """The three rates as (name, lr, what it means), in the order the table and the legend show them."""
    return [
        ("range test (min-loss lr / 10)", result.suggestion, f"smoothed loss lowest at {result.min_loss_lr:.3g}"),
        ("2 g'g / g'Hg", rates.along_gradient, "lowers the loss along g (first step)"),
        (
            "2 / lambda_max",
            rates.any_direction,
            f"stable in every direction (lambda_max {rates.lambda_max:.3g})",
        ),
    ]


def finding(result: LRFindResult, rates: CurvatureRates, choice: Recommendation) -> str:
    """One sentence: where the sweep stopped against 2 / lambda_max, and the pick."""
    if result.diverged and math.isfinite(rates.any_direction):
        where = f"loss diverged at lr {result.stop_lr:.3g} = {result.stop_lr / rates.any_direction:.2g} x 2/lambda_max"
    elif result.diverged:
        where = f"loss diverged at lr {result.stop_lr:.3g}"
    else:
        where = f"no divergence up to lr {result.stop_lr:.3g}"
    return f"{where}; pick lr {choice.lr:.3g} ({choice.source})"


def write_lr_find_csv(result: LRFindResult, path: str | Path) -> None:
    """``lr, loss, smoothed``, one row per step of the sweep (atomically)."""
    rows = [
        {"lr": lr, "loss": loss, "smoothed": smooth}
        for lr, loss, smooth in zip(result.lrs, result.losses, result.smoothed, strict=True)
    ]
    write_csv(path, rows, columns=["lr", "loss", "smoothed"])


def plot_lr_find(
    result: LRFindResult,
    rates: CurvatureRates,
    choice: Recommendation,
    path: str | Path,
    *,
    marks: Sequence[tuple[str, float]] = (),
) -> None:
    """Loss and smoothed loss against lr (log x), the suggestion and the two curvature rates as vertical lines,
    and any ``marks`` (label, lr) as dotted ones (e.g. the lr a config runs at)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    finite = [(lr, s) for lr, s in zip(result.lrs, result.smoothed, strict=True) if math.isfinite(s)]
    ax.plot(result.lrs, result.losses, color="tab:gray", alpha=0.4, linewidth=0.8, label="loss per step")
    ax.plot([lr for lr, _ in finite], [s for _, s in finite], color="tab:blue", label="smoothed loss (EMA 0.98)")
    styles = ["tab:green", "tab:orange", "tab:red"]
    for (name, lr, _), color in zip(rate_rows(result, rates), styles, strict=True):
        if math.isfinite(lr) and lr > 0:
            ax.axvline(lr, color=color, linestyle="--", label=f"{name} = {lr:.3g}")
    for label, lr in marks:
        ax.axvline(lr, color="black", linestyle=":", label=f"{label} = {lr:.3g}")
    values = [s for _, s in finite]
    if values:  # from the lowest loss to a margin above the start: the diverged tail leaves through the top
        low = min([*values, *(loss for loss in result.losses if math.isfinite(loss))])
        high = values[0] + max(values[0] - low, 0.1 * abs(values[0]), 1e-12)
        ax.set_ylim(low - 0.05 * (high - low), high)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(finding(result, rates, choice), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
