"""``regopt diagnose RUN_DIR``: the curvature and gradient noise of a trained model, from its checkpoint.

At the checkpoint's weights, on a probe batch of training examples (the model in eval mode, so dropout is off):

- the Hessian's top eigenvalues and its most negative one (Lanczos), its trace (Hutchinson) and spectral
  density (stochastic Lanczos quadrature): a negative lambda_min means a saddle direction;
- the largest stable learning rate for gradient descent, 2 / lambda_max, and along the gradient itself,
  2 g'g / g'Hg (the chapter's criterion turns positive above it), and the criterion at the run's last learning
  rate (the last row of metrics.csv: a schedule's decayed lr, not the config's initial one);
- the gradient noise: tr(Sigma) of per-example gradients, the noise scale B_simple = tr(Sigma) / ||g||^2 and the
  signal-to-noise ratio against the batch size.

Writes ``diagnose.json``, ``spectrum.png`` and ``gradient_noise.png`` into ``RUN_DIR/diagnose/``.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from regopt.diagnostics import (
    HessianOperator,
    batch_size_curve,
    gradient_noise,
    hessian_trace,
    min_eigenvalue,
    spectral_density,
    step_curvature,
    top_eigenvalues,
)
from regopt.lab.atomic import write_text
from regopt.lab.checkpoint import CheckpointError, load_checkpoint
from regopt.lab.checkpoint_check import check_model_state
from regopt.lab.config import read_toml, validate
from regopt.lab.experiment import build_experiment
from regopt.lab.report import save_figure
from regopt.lab.runs import CHECKPOINT, CONFIG, RunDirError


def diagnose(path: str | Path, *, probe_size: int = 512, top_k: int = 3, seed: int = 0) -> dict[str, Any]:
    """Measure the run's final (or last checkpointed) weights; see the module docstring."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunDirError(f"{path}: not a run directory (no {CONFIG})")
    config = validate(read_toml(path / CONFIG), str(path / CONFIG))
    experiment = build_experiment(config)
    state = load_checkpoint(path / CHECKPOINT, map_location=experiment.device)
    if "model" not in state or not isinstance(state.get("position"), dict):
        raise CheckpointError(f"{path / CHECKPOINT}: not a run's checkpoint (no model weights or position)")
    if experiment.pretraining is not None:  # the network of the stage the checkpoint holds (the final one's)
        experiment.pretraining.prepare_resume(experiment.trainer, state)
    check_model_state(state["model"], experiment.model, path / CHECKPOINT)  # one line naming a misfit tensor
    experiment.model.load_state_dict(state["model"])
    model, data, loss_fn = experiment.model, experiment.data, experiment.trainer.loss_fn
    model.eval()
    x, y = data.x_train[:probe_size], data.y_train[:probe_size]
    op = HessianOperator(model, loss_fn, x, y)
    top = top_eigenvalues(op, k=min(top_k, op.dim), seed=seed).tolist()
    lowest = min_eigenvalue(op, seed=seed)
    trace = hessian_trace(op, samples=30, seed=seed)
    grid, density = spectral_density(op, num_runs=5, lanczos_steps=40, seed=seed)
    g = op.gradient()
    lr = _last_lr(experiment.trainer.optimizer, state)
    along_gradient = step_curvature(g, op.matvec(g), lr)
    noise = gradient_noise(model, loss_fn, x, y)
    sizes = [1, 4, 16, 64, 256, 1024]
    curve = batch_size_curve(noise, sizes)
    result = {
        "run": str(path),
        "step": state["position"].get("step"),
        "parameters": op.dim,
        "probe_examples": len(x),
        "loss": op.loss(),
        "top_eigenvalues": top,
        "min_eigenvalue": lowest,
        "saddle_direction": lowest < 0,
        "trace": trace,
        "stable_lr_any_direction": 2 / top[0] if top[0] > 0 else math.inf,
        "stable_lr_along_gradient": along_gradient["stable_lr"],
        "current_lr": lr,
        "criterion_at_current_lr": along_gradient["criterion"],
        "gradient_norm": math.sqrt(noise["grad_norm_sq"]),
        "gradient_noise_trace": noise["trace_cov"],
        "noise_scale": noise["noise_scale"],
        "snr_by_batch_size": {str(b): snr for b, _, snr in curve},
        "hessian_vector_products": op.num_products,
    }
    out = path / "diagnose"
    out.mkdir(exist_ok=True)
    write_text(out / "diagnose.json", json.dumps(result, indent=2, default=float) + "\n")
    _plot_spectrum(grid, density, top, lowest, out / "spectrum.png")
    _plot_noise(curve, noise["noise_scale"], out / "gradient_noise.png")
    result["figures"] = [str(out / "spectrum.png"), str(out / "gradient_noise.png")]
    return result


def _last_lr(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> float:
    """The learning rate the run trained with last, as metrics.csv's last row records it.

    The checkpoint holds the Trainer's state: its optimizer state (the scheduled lr in ``param_groups``, and the
    per-parameter state) is loaded into ``optimizer``; its history's last row names the lr of the last epoch (an
    epoch schedule has already advanced the optimizer's lr one more time, for an epoch that never ran)."""
    if state.get("optimizer") is not None:
        # a state that does not fit (another optimizer) is not needed for the lr below: diagnose the weights anyway
        with contextlib.suppress(KeyError, ValueError, RuntimeError):
            optimizer.load_state_dict(state["optimizer"])
    history = state.get("history") or []
    if history and "lr" in history[-1]:
        return float(history[-1]["lr"])
    return float(optimizer.param_groups[0]["lr"])


def _plot_spectrum(grid: torch.Tensor, density: torch.Tensor, top: list[float], lowest: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid.tolist(), density.clamp_min(1e-12).tolist(), color="tab:blue")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-7)
    ax.axvline(top[0], color="tab:red", linestyle="--", label=f"lambda_max = {top[0]:.3g}")
    ax.axvline(lowest, color="tab:green", linestyle="--", label=f"lambda_min = {lowest:.3g}")
    ax.set_xlabel("eigenvalue of the Hessian")
    ax.set_ylabel("density (stochastic Lanczos quadrature)")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def _plot_noise(curve: list[tuple[int, float, float]], noise_scale: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes, snrs = [b for b, _, _ in curve], [snr for _, _, snr in curve]
    ax.loglog(sizes, snrs, "o-", label="gradient SNR ||g||^2 B / tr(Sigma)")
    ax.axvline(noise_scale, color="gray", linestyle=":", label=f"noise scale B_simple = {noise_scale:.3g}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("signal-to-noise ratio")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, path)
