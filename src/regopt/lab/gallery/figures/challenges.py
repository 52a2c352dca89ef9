"""Figures of the chapter's optimization challenges: ill-conditioning of f(x) = 30x^2, a saddle, a cliff.

Each function draws data computed by :mod:`regopt.diagnostics.toy_problems` (the gallery entries
``ill_conditioning``, ``saddle`` and ``cliff`` compute it) and saves one PNG with
:func:`~regopt.lab.report.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from regopt.diagnostics.toy_problems import (
    LeastSquaresRun,
    Trajectory,
    cliff_loss,
    ill_conditioning_criterion,
    saddle_loss,
)
from regopt.lab.report import save_figure

COLORS = ("tab:blue", "tab:orange", "tab:green")
RED = "tab:red"


def _verdict(multiplier: float) -> str:
    return "converges" if abs(multiplier) < 1 else "diverges"


def plot_ill_conditioning_trajectories(
    runs: Mapping[float, torch.Tensor], inputs: Sequence[float], path: str | Path, *, curvature: float, zoom: int = 40
) -> None:
    """Top row: |x_k| (log) for every input, one panel per lr. Bottom row: x_k of the first input, signed, for
    the first ``zoom`` steps (the chapter's "For Input 3 and Learning Rate ..." plots)."""
    lrs = list(runs)
    fig, axes = plt.subplots(2, len(lrs), figsize=(4.6 * len(lrs), 7.5))
    for j, lr in enumerate(lrs):
        x = runs[lr].numpy()
        m = 1 - lr * curvature
        steps = np.arange(len(x))
        top, bottom = axes[0, j], axes[1, j]
        if j:
            top.sharey(axes[0, 0])
        for i, x0 in enumerate(inputs):
            top.semilogy(steps, np.abs(x[:, i]), color=COLORS[i % 3], label=f"x0 = {x0:g}")
        top.set_title(
            f"lr = {lr}: x_(k+1) = (1 - 60 lr) x_k = {m:+.2f} x_k\n{_verdict(m)} for every input", fontsize=10
        )
        top.set_xlabel("iteration")
        top.grid(alpha=0.3)
        k = steps[: zoom + 1]
        bottom.plot(k, x[: zoom + 1, 0], "o-", markersize=3, color=RED if abs(m) >= 1 else COLORS[0])
        bottom.axhline(0, color="gray", linewidth=0.8)
        bottom.set_title(f"input {inputs[0]:g}, lr = {lr}: the first {zoom} steps, signed", fontsize=10)
        bottom.set_xlabel("iteration")
        bottom.grid(alpha=0.3)
    axes[0, 0].set_ylabel("|x| (log scale)")
    axes[1, 0].set_ylabel("x (signed: the step overshoots 0)")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(f"Gradient descent on f(x) = 30 x^2: stable only for lr < 2/f'' = 1/30 = {2 / curvature:.5f}")
    fig.tight_layout()
    save_figure(fig, path)


def plot_criterion(
    inputs: Sequence[float], seed_lrs: Sequence[float], path: str | Path, *, curvature: float, boundary: float
) -> None:
    """The chapter's criterion (1/2) eps^2 g'Hg - eps g'g against eps: per input (symlog), and divided by g'g
    (one curve for every input: the sign change at 2/H does not depend on x)."""
    lr = torch.linspace(0.0, 0.045, 451, dtype=torch.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax in (left, right):
        ax.axvspan(boundary, 1.0, color=RED, alpha=0.08, label="criterion > 0: ill-conditioned")
        ax.axvline(boundary, color=RED, linestyle="--", linewidth=1, label=f"boundary 2/H = 1/30 = {boundary:.5f}")
        ax.axhline(0, color="gray", linewidth=0.8)
        for s in seed_lrs:
            ax.axvline(s, color="gray", linestyle=":", linewidth=0.8)
        ax.set_xlabel("learning rate eps")
        ax.grid(alpha=0.3)
    for i, x0 in enumerate(inputs):
        left.plot(lr, ill_conditioning_criterion(x0, lr, curvature), color=COLORS[i % 3], label=f"x = {x0:g}")
        points = ill_conditioning_criterion(x0, list(seed_lrs), curvature)
        left.plot(seed_lrs, points, "o", color=COLORS[i % 3], markersize=5)
    left.set_xlim(0, float(lr[-1]))
    left.set_yscale("symlog", linthresh=10.0)
    left.set_ylabel("(1/2) eps^2 g'Hg - eps g'g   (symlog)")
    left.set_title("criterion at x, g = 60x, H = 60 (dots: lr 0.033, 0.034, 0.035)", fontsize=10)
    left.legend(fontsize="small", loc="upper left")
    zoom = torch.linspace(0.031, 0.036, 201, dtype=torch.float64)
    ratio = ill_conditioning_criterion(1.0, zoom, curvature) / curvature**2  # g'g = (60 x)^2 at x = 1
    right.plot(zoom, ratio, color="black", label="criterion / g'g = eps (eps H / 2 - 1)")
    for s in seed_lrs:
        value = float(ill_conditioning_criterion(1.0, s, curvature)) / curvature**2
        right.plot([s], [value], "o", color=RED if value > 0 else COLORS[0], markersize=7)
        right.annotate(f"lr {s}: {value:+.5f}", (s, value), textcoords="offset points", xytext=(8, -14))
    right.set_xlim(float(zoom[0]), float(zoom[-1]))
    right.set_title("zoom near 1/30, divided by g'g: one curve for every input", fontsize=10)
    right.legend(fontsize="small", loc="upper left")
    fig.suptitle("The chapter's ill-conditioning criterion for f(x) = 30 x^2: positive exactly when eps > 1/30")
    fig.tight_layout()
    save_figure(fig, path)


def plot_remedies(
    adam: torch.Tensor,
    adam_lr: float,
    gd: torch.Tensor,
    gd_lr: float,
    inputs: Sequence[float],
    raw: LeastSquaresRun,
    normalized: LeastSquaresRun,
    path: str | Path,
    *,
    tol: float = 1e-6,
) -> None:
    """Left: Adam on f(x) = 30x^2 from each input (solid) beside gradient descent at ``gd_lr`` (dashed).
    Right: gradient descent on a least-squares problem before and after input normalization."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for i, x0 in enumerate(inputs):
        left.semilogy(np.abs(adam[:, i].numpy()), color=COLORS[i % 3], label=f"Adam lr={adam_lr:g}, x0 = {x0:g}")
        left.semilogy(np.abs(gd[:, i].numpy()), "--", color=COLORS[i % 3], alpha=0.6)
    left.plot([], [], "--", color="gray", label=f"gradient descent, lr = {gd_lr:g} (diverges)")
    left.set_xlabel("iteration")
    left.set_ylabel("|x| (log scale)")
    left.set_title("adaptive step: Adam converges from every input at one lr", fontsize=10)
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize="small", loc="upper right")
    for run, label, color in ((raw, "raw features", RED), (normalized, "standardized features", COLORS[0])):
        gap = run.relative_gap.clamp_min(1e-300).numpy()
        right.loglog(np.arange(1, len(gap) + 1), gap, color=color, label=f"{label}: kappa = {run.condition_number:.4g}")
        if run.iterations is not None:
            right.plot([run.iterations + 1], [gap[run.iterations]], "o", color=color)
            right.annotate(
                f"{run.iterations} iterations",
                (run.iterations + 1, gap[run.iterations]),
                textcoords="offset points",
                xytext=(-60, 10) if run is raw else (10, 0),
                color=color,
            )
    right.axhline(tol, color="gray", linestyle=":", linewidth=1, label=f"tolerance {tol:g}")
    right.set_ylim(1e-9, 3.0)
    right.set_xlabel("iteration + 1 (log scale)")
    right.set_ylabel("(L - L*) / (L(0) - L*)")
    right.set_title(
        "input normalization: least squares, features scaled 1 and 100, GD at lr = 1/lambda_max", fontsize=10
    )
    right.grid(alpha=0.3)
    right.legend(fontsize="small", loc="center left", bbox_to_anchor=(0.12, 0.35))
    fig.suptitle("How to solve ill-conditioning: adaptive learning rates, and pre-processing of the inputs")
    fig.tight_layout()
    save_figure(fig, path)


def plot_saddle(
    runs: Mapping[str, Trajectory], escapes: Mapping[str, int | None], path: str | Path, *, threshold: float
) -> None:
    """Left: trajectories on the contours of x^2 - y^2 until they leave the box. Right: |y| against steps."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 5.2))
    grid = torch.linspace(-1.6, 1.6, 201, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    z = saddle_loss(torch.stack([gx, gy], -1))
    contours = left.contourf(gx, gy, z, levels=21, cmap="RdBu_r", alpha=0.55)
    fig.colorbar(contours, ax=left, label="f(x, y) = x^2 - y^2")
    for i, (name, run) in enumerate(runs.items()):
        p = run.params.numpy()
        inside = np.all(np.abs(p) <= 1.6, axis=1)
        last = int(np.argmin(inside)) + 1 if not inside.all() else len(p)
        left.plot(p[:last, 0], p[:last, 1], "o-", markersize=3, color=COLORS[i % 3], label=name)
        right.semilogy(
            np.abs(p[:, 1]), "o-", markersize=2, color=COLORS[i % 3], label=f"{name}: |y| > 1 at step {escapes[name]}"
        )
        if escapes[name] is not None:
            right.axvline(escapes[name], color=COLORS[i % 3], linestyle=":", linewidth=1)
    start = next(iter(runs.values())).params[0]
    left.plot([float(start[0])], [float(start[1])], "k*", markersize=12, label=f"start ({start[0]:g}, {start[1]:g})")
    left.plot([0], [0], "kx", markersize=9, label="saddle (0, 0)")
    left.set_xlim(-1.6, 1.6)
    left.set_ylim(-1.6, 1.6)
    left.set_aspect("equal")
    left.set_xlabel("x (curves up)")
    left.set_ylabel("y (curves down)")
    left.legend(fontsize="small", loc="lower left")
    left.set_title("paths from next to the saddle, until they leave the box", fontsize=10)
    right.axhline(threshold, color="gray", linestyle="--", linewidth=1, label=f"escape threshold |y| = {threshold:g}")
    right.set_ylim(1e-4, 1e3)
    right.set_xlabel("step")
    right.set_ylabel("|y| (log scale)")
    right.set_title("distance along the escape direction", fontsize=10)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize="small", loc="lower right")
    fig.suptitle("Saddle point of f(x, y) = x^2 - y^2: the gradient vanishes at the saddle, so escape starts slowly")
    fig.tight_layout()
    save_figure(fig, path)


def plot_cliff(runs: Mapping[str, Trajectory], path: str | Path, *, clip: float) -> None:
    """Left: the cliff objective with both trajectories on it. Middle: loss. Right: gradient norm."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    far = max(float(r.params.max()) for r in runs.values())
    xs = torch.linspace(-0.5, max(8.0, far + 2), 4000, dtype=torch.float64)
    fx = [float(cliff_loss(x)) for x in xs]
    inset = left.inset_axes([0.55, 0.1, 0.42, 0.33])
    for ax in (left, inset):
        ax.plot(xs, fx, color="black", linewidth=1, label="f(x)")
    for (name, run), color, marker in zip(runs.items(), (RED, COLORS[0]), ("o", "s"), strict=False):
        x = run.params[:, 0].numpy()
        loss = run.loss.numpy()
        jumps = x.max() > 7.0  # leaves the zoomed view: markers only there, the whole path in the inset
        left.plot(x, loss, marker + ("" if jumps else "-"), color=color, markersize=4, linewidth=0.6, label=name)
        inset.plot(x, loss, marker + "-", color=color, markersize=2, linewidth=0.6)
        middle.semilogy(loss, marker + "-", color=color, markersize=3, label=name)
        right.semilogy(run.grad_norm.numpy(), marker + "-", color=color, markersize=3, label=name)
        if jumps:
            k = int(np.argmax(x > 7.0))
            y = loss[k - 1]
            left.annotate("", xy=(6.9, y), xytext=(x[k - 1] + 0.1, y), arrowprops={"arrowstyle": "->", "color": color})
            left.text(
                2.3,
                y - 2.2,
                f"step {k}: x = {x[k - 1]:.2f} -> {x[k]:.1f}\nf = {y:.1f} -> {loss[k]:.0f} (see inset)",
                color=color,
                fontsize=8,
            )
    left.set_xlim(-0.5, 7.0)
    left.set_ylim(-1.0, 22.5)
    inset.set_title("whole path", fontsize=8, pad=2)
    inset.tick_params(labelsize=7)
    left.set_xlabel("x")
    left.set_ylabel("f(x)")
    left.set_title("f(x) = 0.05 (x - 5)^2 + 20 sigmoid(-25 (x - 2)), and the iterates", fontsize=10)
    left.legend(fontsize="small", loc="upper right")
    middle.set_xlabel("step")
    middle.set_ylabel("loss (log scale)")
    middle.set_title("loss: the unclipped step off the cliff face jumps up", fontsize=10)
    middle.legend(fontsize="small")
    right.axhline(clip, color="gray", linestyle="--", linewidth=1, label=f"clip max_norm = {clip:g}")
    right.set_xlabel("step")
    right.set_ylabel("|f'(x)| before clipping (log scale)")
    right.set_title("gradient norm: ~100 on the cliff face", fontsize=10)
    right.legend(fontsize="small")
    for ax in (middle, right):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Cliffs and exploding gradients: gradient descent with and without gradient-norm clipping")
    fig.tight_layout()
    save_figure(fig, path)
