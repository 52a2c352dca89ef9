"""Dropout inference (sec. 7.12): the weight-scaling rule against Monte Carlo averaging of subnetworks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regopt.regularize.dropout import compare_inference, mc_dropout_predict, weight_scaling_predict


def mlp(p: float, *, batch_norm: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(5, 16)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(p), nn.Linear(16, 3)]
    return nn.Sequential(*layers)


def test_with_p_zero_both_rules_agree_exactly() -> None:
    model = mlp(0.0)
    x = torch.randn(20, 5)
    assert torch.equal(mc_dropout_predict(model, x, samples=4, seed=0), weight_scaling_predict(model, x))
    assert torch.equal(
        mc_dropout_predict(model, x, samples=3, softmax=False), weight_scaling_predict(model, x, softmax=False)
    )


def test_mc_mean_of_a_linear_layer_after_dropout_converges_to_weight_scaling() -> None:
    """E[W (m ⊙ x) / (1 - p)] = W x: the weight-scaling rule is the exact ensemble mean of a linear layer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(10, 4))
    x = torch.randn(6, 10)
    exact = weight_scaling_predict(model, x, softmax=False)
    mc = mc_dropout_predict(model, x, samples=2000, seed=1, softmax=False)
    scale = exact.abs().max().item()
    assert (mc - exact).abs().max().item() < 0.05 * scale
    few = mc_dropout_predict(model, x, samples=5, seed=1, softmax=False)
    assert (few - exact).abs().max().item() > (mc - exact).abs().max().item()


def test_geometric_mc_mean_of_softmax_regression_converges_to_weight_scaling() -> None:
    """For softmax regression, the renormalized geometric mean of the subnetworks is the weight-scaled model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.3), nn.Linear(8, 3))
    x = torch.randn(6, 8)
    exact = weight_scaling_predict(model, x)
    geometric = mc_dropout_predict(model, x, samples=2000, seed=2, mean="geometric")
    assert torch.allclose(geometric.sum(dim=1), torch.ones(6))
    assert (geometric - exact).abs().max().item() < 0.02


def test_mc_dropout_restores_modes_and_keeps_batch_norm_in_eval() -> None:
    model = mlp(0.5, batch_norm=True)
    model.train()
    model[1].eval()  # a mixed state to restore
    modes = [m.training for m in model.modules()]
    stats = model[1].running_mean.clone()
    x = torch.randn(32, 5)
    probs = mc_dropout_predict(model, x, samples=8, seed=0)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[1].running_mean, stats)  # batch norm stayed in eval mode
    assert torch.allclose(probs.sum(dim=1), torch.ones(32))
    weight_scaling_predict(model, x)
    assert [m.training for m in model.modules()] == modes


def test_mc_dropout_seed_is_reproducible_and_leaves_global_rng_alone() -> None:
    model = mlp(0.5)
    x = torch.randn(10, 5)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = mc_dropout_predict(model, x, samples=5, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = mc_dropout_predict(model, x, samples=5, seed=7)
    assert torch.equal(a, b)
    c = mc_dropout_predict(model, x, samples=5, seed=8)
    assert not torch.equal(a, c)


def test_compare_inference_returns_sane_numbers() -> None:
    model = mlp(0.5)
    x = torch.randn(64, 5)
    y = weight_scaling_predict(model, x).argmax(dim=1)
    result = compare_inference(model, x, y, samples=20)
    assert set(result) == {"weight_scaling_error", "mc_error", "mean_abs_prob_diff", "agreement", "samples"}
    assert result["weight_scaling_error"] == 0.0
    assert 0.0 <= result["mc_error"] <= 1.0 and 0.0 <= result["agreement"] <= 1.0
    assert result["mc_error"] == pytest.approx(1.0 - result["agreement"])
    assert 0.0 < result["mean_abs_prob_diff"] < 0.5
    assert result["samples"] == 20


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda m, x: mc_dropout_predict(m, x, samples=0), r"samples must be a positive integer, got 0"),
        (lambda m, x: mc_dropout_predict(m, x, mean="harmonic"), r"mean must be .* got 'harmonic'"),
        (lambda m, x: mc_dropout_predict(m, x, mean="geometric", softmax=False), r"mean='geometric' needs"),
        (lambda m, x: mc_dropout_predict(nn.Linear(5, 3), x), r"model has no dropout module"),
        (lambda m, x: compare_inference(m, x, torch.zeros(3, dtype=torch.long)), r"y must hold one class index"),
    ],
)
def test_bad_arguments_raise_value_error(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call(mlp(0.5), torch.randn(4, 5))
