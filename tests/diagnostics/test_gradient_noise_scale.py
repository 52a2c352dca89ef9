"""The gradient noise scale from two batch sizes (McCandlish et al. 2018, App. A) against the single-process
``gradient_noise`` (exact tr(Sigma) and ||G||^2 from per-example gradients). The distributed path,
``rank_gradient_norms`` over two gloo processes, is checked in test_distributed_curvature.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.diagnostics import NoiseScaleEstimate, gradient_noise, noise_scale_terms, per_example_gradients


def problem(n: int = 64) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 2, generator=g, dtype=torch.float64) + 1.0  # a non-zero mean gradient
    return model, x, y


def test_the_expected_squared_norms_give_back_the_exact_statistics() -> None:
    model, x, y = problem()
    stats = gradient_noise(model, F.mse_loss, x, y)
    g2, trace = stats["grad_norm_sq"], stats["trace_cov"]
    # E ||G_b||^2 = ||G||^2 + tr(Sigma) / b for b examples drawn with replacement from the n
    got = noise_scale_terms(g2 + trace / 4, 4, g2 + trace / 8, 8)
    assert got == pytest.approx((g2, trace), rel=1e-12)


def test_two_rank_estimate_over_many_steps_matches_gradient_noise() -> None:
    """Simulated data parallelism: each step, two ranks each average b = 4 examples drawn with replacement; the
    estimate averaged over 4000 steps matches the exact statistics within 5 standard errors."""
    model, x, y = problem()
    stats = gradient_noise(model, F.mse_loss, x, y)
    per_example = per_example_gradients(model, F.mse_loss, x, y)
    world, b, steps = 2, 4, 4000
    idx = torch.randint(0, x.shape[0], (steps, world, b), generator=torch.Generator().manual_seed(2))
    rank_grads = per_example[idx].mean(dim=2)  # (steps, world, params): each rank's gradient
    small = rank_grads.square().sum(-1).mean(-1)  # mean over ranks of ||g_i||^2
    big = rank_grads.mean(dim=1).square().sum(-1)  # ||mean_i g_i||^2, batch world * b
    estimate = NoiseScaleEstimate()
    terms = []
    for s, bg in zip(small.tolist(), big.tolist(), strict=True):
        estimate.update(s, b, bg, world * b)
        terms.append(noise_scale_terms(s, b, bg, world * b))
    per_step = torch.tensor(terms, dtype=torch.float64)
    se = per_step.std(dim=0) / math.sqrt(steps)
    assert estimate.steps == steps
    assert abs(estimate.grad_norm_sq - stats["grad_norm_sq"]) < 5 * float(se[0])
    assert abs(estimate.trace_cov - stats["trace_cov"]) < 5 * float(se[1])
    relative = 5 * (float(se[0]) / stats["grad_norm_sq"] + float(se[1]) / stats["trace_cov"])
    assert relative < 0.2  # the check has teeth: the noise scale to within 20% at most
    assert estimate.noise_scale == pytest.approx(stats["noise_scale"], rel=relative)
    estimate.reset()
    assert estimate.steps == 0 and math.isnan(estimate.noise_scale)


def test_batch_sizes_must_differ() -> None:
    with pytest.raises(ValueError, match="small_batch < big_batch"):
        noise_scale_terms(1.0, 8, 1.0, 8)
