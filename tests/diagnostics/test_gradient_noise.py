"""Inexact gradients: per-example gradients, mini-batch gradient variance, SNR and the simple noise scale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from regopt.diagnostics.noise import batch_size_curve, gradient_noise, gradient_snr, per_example_gradients


def mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)


def data(n: int = 40, seed: int = 1, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=dtype)
    y = torch.randn(n, 2, generator=g, dtype=dtype)
    return x, y


def loop_gradients(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    rows = []
    for i in range(x.shape[0]):
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss_fn(model(x[i : i + 1]), y[i : i + 1]), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_example_gradients_match_a_loop_of_single_example_backward_passes(dtype: torch.dtype) -> None:
    model, (x, y) = mlp(dtype=dtype), data(12, dtype=dtype)
    got = per_example_gradients(model, F.mse_loss, x, y)
    assert got.shape == (12, sum(p.numel() for p in model.parameters()))
    expected = loop_gradients(model, F.mse_loss, x, y)
    # vmap's batched products sum in another order and blocking than one example's (and differently per vector
    # width): each entry, a sum of <= 8 products, can differ by a few ulps of the largest gradient (1 ulp here).
    # 64 ulps of it allows that on any CPU (float32: 1.5e-5; float64: 3.6e-14, where 1e-6 was allowed before); a
    # wrong example, scale or reduction is off by O(1).
    atol = 64 * torch.finfo(dtype).eps * expected.abs().max().item()
    torch.testing.assert_close(got, expected, atol=atol, rtol=0)


def test_per_example_gradients_with_class_targets_frozen_parameters_and_batchnorm() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    model[0].bias.requires_grad_(False)
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    model.train()
    got = per_example_gradients(model, F.cross_entropy, x, y, chunk_size=3)
    assert model.training and model[1].training  # modes restored
    model.eval()
    expected = loop_gradients(model, F.cross_entropy, x, y)  # eval mode: running statistics, frozen bias excluded
    assert got.shape == (10, sum(p.numel() for p in model.parameters() if p.requires_grad))
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_statistics_are_the_mean_and_covariance_trace_of_the_per_example_gradients() -> None:
    model, (x, y) = mlp(), data(30)
    per_example = per_example_gradients(model, F.mse_loss, x, y)
    stats = gradient_noise(model, F.mse_loss, x, y, chunk_size=7)  # chunks of unequal size merged
    mean = per_example.mean(0)
    trace = (per_example - mean).square().sum(1).mean().item()
    torch.testing.assert_close(stats["mean_gradient"], mean, atol=1e-12, rtol=0)
    full = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    torch.testing.assert_close(stats["mean_gradient"], torch.cat([g.reshape(-1) for g in full]), atol=1e-12, rtol=0)
    assert stats["trace_cov"] == pytest.approx(trace, rel=1e-10)
    assert stats["grad_norm_sq"] == pytest.approx(mean.square().sum().item(), rel=1e-10)
    assert stats["noise_scale"] == pytest.approx(stats["trace_cov"] / stats["grad_norm_sq"])
    assert stats["num_examples"] == 30 and stats["num_params"] == per_example.shape[1]


def test_variance_of_random_mini_batch_gradients_is_trace_over_batch_size() -> None:
    model, (x, y) = mlp(), data(50)
    stats = gradient_noise(model, F.mse_loss, x, y)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def batch_loss(theta: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(functional_call(model, theta, (x[idx],)), y[idx])

    g = torch.Generator().manual_seed(2)
    draws = 4000
    for batch_size, (_, expected, _) in zip((4, 16), batch_size_curve(stats, [4, 16]), strict=True):
        idx = torch.randint(0, 50, (draws, batch_size), generator=g)  # with replacement
        minibatch = vmap(grad(batch_loss), in_dims=(None, 0))(params, idx)
        flat = torch.cat([v.reshape(draws, -1) for v in minibatch.values()], dim=1)
        observed = (flat - stats["mean_gradient"]).square().sum(1).mean().item()
        assert expected == pytest.approx(stats["trace_cov"] / batch_size)
        assert observed == pytest.approx(expected, rel=0.10)


def test_snr_grows_linearly_with_batch_size_and_is_one_at_the_noise_scale() -> None:
    model, (x, y) = mlp(), data(40)
    stats = gradient_noise(model, F.mse_loss, x, y)
    rows = batch_size_curve(stats, [1, 2, 4, 8, 64])
    snr1 = rows[0][2]
    for batch_size, variance, snr in rows:
        assert snr == pytest.approx(batch_size * snr1)
        assert snr == pytest.approx(stats["grad_norm_sq"] / variance)
        assert snr == stats["snr"](batch_size) == gradient_snr(stats, batch_size)
    assert snr1 == pytest.approx(1 / stats["noise_scale"])


def test_zero_noise_and_bad_arguments() -> None:
    model = nn.Linear(2, 1, bias=False).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    stats = gradient_noise(model, F.mse_loss, x[:1].repeat(5, 1), torch.zeros(5, 1, dtype=x.dtype))
    assert stats["trace_cov"] == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError, match="batch_size"):
        batch_size_curve(stats, [0])
    with pytest.raises(ValueError, match="chunk_size"):
        gradient_noise(model, F.mse_loss, x, x[:, :1], chunk_size=0)
    with pytest.raises(ValueError, match="same number of examples"):
        per_example_gradients(model, F.mse_loss, x, x[:3, :1])
    assert math.isfinite(gradient_noise(model, F.mse_loss, x, x[:, :1])["noise_scale"])
