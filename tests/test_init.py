"""Initialization policies: the weight scale of each, bias rules, determinism, and the scale through depth."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest
import torch
from torch import nn

from regopt.init import POLICIES, activation_statistics, initialize

N = 512  # a 512 x 512 layer: 262,144 weights, so a sample std is within ~0.3% of the true one


def layer(fan_in: int = N, fan_out: int = N) -> nn.Sequential:
    return nn.Sequential(nn.Linear(fan_in, fan_out))


def weight_of(policy: str, **kwargs) -> torch.Tensor:
    return initialize(layer(), policy, generator=torch.Generator().manual_seed(0), **kwargs)[0].weight.detach()


def deep_mlp(depth: int = 20, width: int = 256, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


# policy -> expected std of the weights of a 512 x 512 layer (ReLU nonlinearity, default gain)
EXPECTED_STD = {
    "xavier_uniform": math.sqrt(2 / (N + N)),  # U(+-sqrt(6/(m+n))): std = bound / sqrt(3)
    "xavier_normal": math.sqrt(2 / (N + N)),
    "he_uniform": math.sqrt(2 / N),
    "he_normal": math.sqrt(2 / N),
    "lecun_normal": math.sqrt(1 / N),
    "orthogonal": math.sqrt(1 / N),  # rows of a square orthogonal matrix have unit norm
    "default": math.sqrt(1 / (3 * N)),  # U(+-1/sqrt(m))
}


def test_every_policy_is_described():
    assert set(POLICIES) == {*EXPECTED_STD, "sparse"}
    assert all(isinstance(text, str) and text for text in POLICIES.values())


@pytest.mark.parametrize(("policy", "std"), EXPECTED_STD.items(), ids=list(EXPECTED_STD))
def test_weight_std_of_each_policy(policy, std):
    w = weight_of(policy)
    assert w.mean().abs() < 0.01 * std * 10
    assert w.std().item() == pytest.approx(std, rel=0.01)


def test_uniform_policies_respect_their_bounds():
    bound = math.sqrt(6 / (N + N))
    w = weight_of("xavier_uniform")
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound  # and reach them
    assert weight_of("he_uniform").abs().max() <= math.sqrt(6 / N)
    assert weight_of("xavier_uniform", gain=2.0).abs().max() <= 2 * bound


def test_gain_scales_the_weights():
    assert weight_of("he_normal", gain=1.0).std().item() == pytest.approx(math.sqrt(1 / N), rel=0.01)
    assert weight_of("lecun_normal", gain=3.0).std().item() == pytest.approx(3 * math.sqrt(1 / N), rel=0.01)
    tanh = weight_of("he_normal", nonlinearity="tanh").std().item()
    assert tanh == pytest.approx(5 / 3 / math.sqrt(N), rel=0.01)


@pytest.mark.parametrize("shape", [(64, 64), (32, 100), (100, 32)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    out_features, in_features = shape
    w = initialize(layer(in_features, out_features), "orthogonal")[0].weight.detach().double()
    gram = w @ w.T if out_features <= in_features else w.T @ w
    # float32 Householder QR (LAPACK, whose MKL path depends on the CPU) loses orthogonality ~ n eps32: up to ~1e-5
    # for n = 100 in the worst case, 4-5e-7 observed (AVX-512 and AVX2 MKL paths); a non-orthogonal init is O(0.1) off
    torch.testing.assert_close(gram, torch.eye(min(shape), dtype=torch.float64), atol=1e-5, rtol=0)
    w2 = initialize(layer(64, 64), "orthogonal", gain=2.0)[0].weight.detach().double()
    torch.testing.assert_close(w2 @ w2.T, 4 * torch.eye(64, dtype=torch.float64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_sparse_zeroes_a_fraction_of_each_units_incoming_weights(sparsity):
    w = initialize(layer(200, 50), "sparse", sparsity=sparsity)[0].weight.detach()  # (units, inputs)
    zeros_per_unit = (w == 0).sum(dim=1)
    assert (zeros_per_unit == math.ceil(sparsity * 200)).all()  # Martens: each unit, the same number kept
    assert (w == 0).float().mean().item() == pytest.approx(sparsity, abs=0.01)
    kept = w[w != 0]
    assert kept.std().item() == pytest.approx(1 / math.sqrt(200 - math.ceil(sparsity * 200)), rel=0.15)


def test_sparse_on_a_convolution():
    conv = initialize(nn.Sequential(nn.Conv2d(8, 16, 3)), "sparse", sparsity=0.75)[0]
    per_unit = (conv.weight.detach().reshape(16, -1) == 0).sum(dim=1)
    assert (per_unit == math.ceil(0.75 * 72)).all()


def test_bias_rules():
    def biases(**kwargs):
        return initialize(layer(64, 64), "he_normal", **kwargs)[0].bias.detach()

    assert (biases() == 0).all()
    assert (biases(bias="zero") == 0).all()
    assert (biases(bias=0.1) == 0.1).all()  # ReLU units start active (sec. 8.4)
    default = biases(bias="default")
    assert default.abs().max() <= 1 / 8 and default.std() > 0.02


def test_applies_to_convolutions_and_leaves_other_modules_alone():
    model = nn.Sequential(nn.Conv1d(1, 8, 5), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 3))
    model[1].weight.data.fill_(2.0)
    initialize(model, "he_normal", bias=0.5)
    assert (model[0].bias == 0.5).all() and (model[4].bias == 0.5).all()
    assert model[0].weight.std().item() == pytest.approx(math.sqrt(2 / 5), rel=0.5)
    assert (model[1].weight == 2.0).all() and (model[1].bias == 0).all()


def test_returns_the_model_and_is_deterministic():
    model = deep_mlp(3, 32)
    assert initialize(model, "xavier_normal") is model
    for policy in POLICIES:
        a = initialize(deep_mlp(3, 32), policy, generator=torch.Generator().manual_seed(1), bias="default")
        b = initialize(deep_mlp(3, 32), policy, generator=torch.Generator().manual_seed(1), bias="default")
        torch.manual_seed(5)
        c = initialize(deep_mlp(3, 32), policy, bias="default")
        torch.manual_seed(5)
        d = initialize(deep_mlp(3, 32), policy, bias="default")
        for p, q, r, s in zip(a.parameters(), b.parameters(), c.parameters(), d.parameters(), strict=True):
            assert torch.equal(p, q), policy
            assert torch.equal(r, s), policy


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "glorot"}, "policy.*'glorot'"),
        ({"policy": "he_normal", "bias": "ones"}, "bias.*'ones'"),
        ({"policy": "he_normal", "gain": 0.0}, "gain.*0.0"),
        ({"policy": "sparse", "sparsity": 1.0}, "sparsity.*1.0"),
        ({"policy": "he_normal", "nonlinearity": "swish"}, "nonlinearity.*'swish'"),
    ],
)
def test_bad_arguments_raise_naming_them_and_change_nothing(kwargs, match):
    model = layer(8, 8)
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError, match=match):
        initialize(model, **kwargs)
    assert torch.equal(model[0].weight, before)


def test_a_model_without_layers_is_an_error():
    with pytest.raises(ValueError, match="no Linear or convolution"):
        initialize(nn.Sequential(nn.ReLU()), "he_normal")


# ------------------------------------------------------------------------------- scale through depth


def test_activation_statistics_rows():
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16))
    model.append(nn.Tanh()).append(nn.Linear(16, 3))
    rows = activation_statistics(model, torch.randn(32, 8))
    assert [(r["layer"], r["name"]) for r in rows] == [(1, "3"), (2, "5")]
    assert all(r["activation_std"] > 0 and r["gradient_std"] > 0 for r in rows)
    assert all(p.grad is None for p in model.parameters())  # parameter gradients untouched
    with_loss = activation_statistics(model, torch.randn(32, 8), torch.randint(0, 3, (32,)))
    assert len(with_loss) == 2 and with_loss[0]["gradient_std"] > 0
    assert activation_statistics(nn.Sequential(nn.Linear(4, 2)), torch.randn(3, 4)) == []


def test_activation_statistics_wants_a_sequential():
    with pytest.raises(ValueError, match=r"nn\.Sequential"):
        activation_statistics(nn.Linear(3, 3), torch.randn(2, 3))  # type: ignore[arg-type]


def test_he_keeps_the_scale_of_a_deep_relu_network_and_a_tiny_init_vanishes():
    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    he = initialize(deep_mlp(), "he_normal", generator=torch.Generator().manual_seed(0))
    rows = activation_statistics(he, x, generator=torch.Generator().manual_seed(0))
    assert len(rows) == 20
    ratio = rows[-1]["activation_std"] / rows[0]["activation_std"]
    assert 0.3 <= ratio <= 3
    gradient_ratio = rows[0]["gradient_std"] / rows[-1]["gradient_std"]
    assert 0.3 <= gradient_ratio <= 3

    small = deep_mlp()
    torch.manual_seed(0)
    for module in small.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)
    rows = activation_statistics(small, x, generator=torch.Generator().manual_seed(0))
    assert rows[-1]["activation_std"] / rows[0]["activation_std"] < 1e-3
    assert rows[0]["gradient_std"] / rows[-1]["gradient_std"] < 1e-3

    xavier = initialize(deep_mlp(), "xavier_normal", generator=torch.Generator().manual_seed(0))
    rows = activation_statistics(xavier, x)
    assert rows[-1]["activation_std"] / rows[0]["activation_std"] < 0.01  # halves the variance per ReLU layer


def test_example_script(capsys):
    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "initialization.py"))
    results = example["main"](steps=30)
    assert list(results) == list(POLICIES)
    assert 0.3 < results["he_normal"]["activation_ratio"] < 3
    assert results["default"]["activation_ratio"] < 1e-3
    assert results["he_normal"]["loss"] < results["default"]["loss"] - 0.3  # the vanishing network cannot learn
    assert len(capsys.readouterr().out.splitlines()) == 1 + len(POLICIES)
