"""Figures of the gallery entry ``second_order``: iterations against the condition number on quadratics, and
L-BFGS against Adam on a digits MLP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from regopt.lab.report import save_figure

COLORS = {
    "gradient descent": "tab:blue",
    "heavy ball": "tab:orange",
    "CG": "tab:green",
    "BFGS": "tab:red",
    "L-BFGS": "tab:purple",
    "Newton": "tab:brown",
}


def plot_quadratics(
    iterations: Mapping[float, Mapping[str, int | None]],
    theory: Mapping[float, Mapping[str, float]],
    path: Path,
    *,
    n: int,
    eps: float,
) -> None:
    """Log-log: measured iterations per method (markers) against kappa, the theory bounds dashed."""
    kappas = list(iterations)
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for method, color in COLORS.items():
        points = [(k, iterations[k][method]) for k in kappas if iterations[k][method] is not None]
        ax.loglog(*zip(*points, strict=True), "o-", color=color, label=method)
    for method, label in (("gradient descent", "GD bound ~ kappa"), ("CG", "CG bound ~ sqrt(kappa)")):
        ax.loglog(kappas, [theory[k][method] for k in kappas], "--", color=COLORS[method], alpha=0.6, label=label)
    ax.axhline(n, color="gray", linewidth=0.8, linestyle=":", label=f"n = {n}")
    ax.set_xlabel("condition number kappa = L / mu")
    ax.set_ylabel(f"iterations to f < {eps:g} f(x0)")
    ax.set_title(f"f = 1/2 (x - x*)'A(x - x*), n = {n}, eigenvalues log-spaced in [1, kappa]", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_mlp(curves: Mapping[str, Sequence[tuple[int, float, float]]], path: Path) -> None:
    """Training loss (log) against evaluations (left) and against wall time (right), one line per optimizer."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for (name, curve), color in zip(curves.items(), ("tab:purple", "tab:gray"), strict=False):
        evals, seconds, loss = zip(*curve, strict=True)
        axes[0].semilogy(evals, loss, color=color, label=name)
        axes[1].semilogy(seconds, loss, color=color, label=name)
    axes[0].set_xlabel("loss-and-gradient evaluations (full batch)")
    axes[1].set_xlabel("wall time (s, one thread)")
    for ax in axes:
        ax.set_ylabel("training loss (lowest so far)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("digits MLP 64-64-10, full batch: L-BFGS vs Adam", fontsize=11)
    save_figure(fig, path)


def plot_sharpness(runs: Mapping[str, Sequence[object]], path: Path, *, title: str) -> None:
    """Two panels, test error and top Hessian eigenvalue: one point per seed (a seed's runs joined by a thin line)
    and the mean (a bar) for each optimizer."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    methods = list(runs)
    for ax, (field, label) in zip(
        axes, (("error", "test error"), ("sharpness", "top Hessian eigenvalue")), strict=True
    ):
        values = [[float(getattr(o, field)) for o in runs[m]] for m in methods]
        means = [sum(v) / len(v) for v in values]
        ax.bar(range(len(methods)), means, color=["tab:gray", "tab:purple"][: len(methods)], alpha=0.35, label="mean")
        for seed, points in enumerate(zip(*values, strict=True)):
            ax.plot(
                range(len(methods)),
                points,
                "o-",
                color="black",
                linewidth=0.7,
                alpha=0.7,
                label="one seed" if seed == 0 else None,
            )
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
