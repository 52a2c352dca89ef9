"""Sec. 7.10: penalties on activations (hooks), and the fraction of exactly-zero ReLU outputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from regopt.regularize import ActivationKL, ActivationL1, activation_sparsity


def relu_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))


def test_value_is_mean_l1_of_relu_outputs_and_gradient_flows():
    model = relu_mlp()
    penalty = ActivationL1(0.25, [model[1], model[3]])
    x = torch.randn(16, 8)
    out = model(x)
    h1 = model[1](model[0](x))
    h2 = model[3](model[2](h1))
    expected = 0.25 * (h1.abs().sum() / 16 + h2.abs().sum() / 16)
    value = penalty(model)
    torch.testing.assert_close(value, expected)
    (out.pow(2).mean() + value).backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
    assert penalty(model).item() == 0.0  # consumed: cleared after the call


def test_records_only_the_most_recent_forward_and_only_in_training_mode():
    model = relu_mlp()
    penalty = ActivationL1(1.0, [model[1]])
    x1, x2 = torch.randn(4, 8), torch.randn(6, 8)
    model(x1)
    model(x2)
    expected = torch.relu(model[0](x2)).abs().sum() / 6
    torch.testing.assert_close(penalty(), expected)
    model.eval()
    model(x1)
    assert penalty(model).item() == 0.0
    model.train()
    model(x1)
    penalty.clear()
    assert penalty(model).item() == 0.0


def test_remove_detaches_the_hooks():
    model = relu_mlp()
    penalty = ActivationL1(1.0, [model[1]])
    assert len(model[1]._forward_hooks) == 1
    penalty.remove()
    assert len(model[1]._forward_hooks) == 0
    model(torch.randn(4, 8))
    assert penalty(model).item() == 0.0


def test_alpha_zero_is_a_no_op():
    model = relu_mlp()
    penalty = ActivationL1(0.0, [model[1]])
    model(torch.randn(4, 8))
    value = penalty(model)
    assert value.item() == 0.0 and not value.requires_grad


def train(alpha: float) -> float:
    model = relu_mlp()
    torch.manual_seed(1)
    x = torch.randn(128, 8)
    y = torch.sin(x[:, :1]) + x[:, 1:2] ** 2
    relus = [model[1], model[3]]
    penalty = ActivationL1(alpha, relus)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        (nn.functional.mse_loss(model(x), y) + penalty(model)).backward()
        opt.step()
    penalty.remove()
    return activation_sparsity(model, x, relus)


def test_training_with_activation_l1_makes_representations_sparser():
    plain, sparse = train(0.0), train(0.1)
    assert sparse > plain + 0.1, (plain, sparse)  # observed: 0.60 -> 0.85


def test_activation_sparsity_counts_zeros_and_restores_modes():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
        model[0].bias.zero_()
    x = torch.tensor([[1.0, 2.0], [-1.0, 3.0]])  # each row: two positive, two negative pre-activations
    model.train()
    model[0].eval()
    assert activation_sparsity(model, x, [model[1]]) == 0.5
    assert model.training and model[1].training and not model[0].training
    assert len(model[1]._forward_hooks) == 0


def test_kl_penalty_value():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Sigmoid())
    penalty = ActivationKL(0.5, 0.05, [model[1]])
    x = torch.randn(10, 3)
    h = model(x)
    rho_hat = h.mean(dim=0)
    kl = 0.05 * torch.log(0.05 / rho_hat) + 0.95 * torch.log(0.95 / (1 - rho_hat))
    torch.testing.assert_close(penalty(model), 0.5 * kl.sum())
    with torch.no_grad():
        model[0].bias.fill_(math.log(0.05 / 0.95))  # mean activation exactly rho when the weights are 0
        model[0].weight.zero_()
    model(x)
    assert penalty(model).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: ActivationL1(-1.0, [m[1]]), r"alpha must be .*>= 0, got -1\.0"),
        (lambda m: ActivationL1(0.1, []), r"modules must be a non-empty sequence of nn\.Module"),
        (lambda m: ActivationL1(0.1, ["relu"]), r"modules must be a non-empty sequence"),
        (lambda m: ActivationKL(0.1, 1.0, [m[1]]), r"rho must be a number in \(0, 1\), got 1\.0"),
        (lambda m: activation_sparsity(m, torch.randn(2, 8), []), r"modules must be a non-empty sequence"),
        (lambda m: activation_sparsity(m, torch.randn(2, 8), [nn.ReLU()]), r"modules produced no tensor output"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make(relu_mlp())
