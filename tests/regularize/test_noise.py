"""Noise robustness (sec. 7.5): input, hidden-unit, weight and target noise."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from regopt.regularize.noise import GaussianNoise, InputNoise, add_hidden_noise
from regopt.regularize.selection import Selector
from regopt.regularize.target_noise import smoothed_cross_entropy, soft_targets
from regopt.regularize.weight_noise import WeightNoise, add_weight_noise, remove_weight_noise


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ input noise
@pytest.mark.parametrize("std", [0.1, 2.0])
def test_input_noise_has_the_requested_std_and_keeps_targets(std: float) -> None:
    x = torch.randn(1000, 100, generator=gen(1))
    y = torch.arange(1000)
    x2, y2 = InputNoise(std, generator=gen())(x, y)
    delta = x2 - x
    assert delta.std().item() == pytest.approx(std, rel=0.05)
    assert abs(delta.mean().item()) < 0.05 * std
    assert y2 is y


def test_input_noise_zero_std_is_identity_and_generator_makes_it_reproducible() -> None:
    x, y = torch.randn(8, 3), torch.arange(8)
    assert InputNoise(0.0)(x, y)[0] is x
    a = InputNoise(0.5, generator=gen(3))(x, y)[0]
    b = InputNoise(0.5, generator=gen(3))(x, y)[0]
    assert torch.equal(a, b)


def test_input_noise_state_dict_resumes_the_noise_sequence() -> None:
    x, y = torch.zeros(4, 5), torch.arange(4)
    transform = InputNoise(1.0, generator=gen(7))
    transform(x, y)
    state = transform.state_dict()
    expected = transform(x, y)[0]
    resumed = InputNoise(1.0, generator=gen(99))
    resumed.load_state_dict(state)
    assert torch.equal(resumed(x, y)[0], expected)


# ------------------------------------------------------------------------------------------ hidden-unit noise
def test_gaussian_noise_is_identity_in_eval_and_noisy_in_train() -> None:
    layer = GaussianNoise(0.3, generator=gen())
    x = torch.randn(500, 200, generator=gen(1))
    assert torch.equal(layer.eval()(x), x)
    noisy = layer.train()(x)
    assert not torch.equal(noisy, x)
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.05)
    assert torch.equal(GaussianNoise(0.0).train()(x), x)
    assert "std=0.3" in repr(layer)


def test_add_hidden_noise_inserts_after_each_activation_and_shares_parameters() -> None:
    net = nn.Sequential(
        nn.Linear(4, 8),
        nn.ReLU(),
        nn.Sequential(nn.Linear(8, 8), nn.Tanh()),
        nn.Linear(8, 8),
        nn.GELU(),
        nn.Linear(8, 2),
    )
    noisy = add_hidden_noise(net, 0.1)
    kinds = [type(m).__name__ for m in noisy]
    assert kinds == ["Linear", "ReLU", "GaussianNoise", "Sequential", "Linear", "GELU", "GaussianNoise", "Linear"]
    assert [type(m).__name__ for m in noisy[3]] == ["Linear", "Tanh", "GaussianNoise"]
    assert [n for n, _ in noisy.named_children()][:3] == ["0", "1", "1_noise"]
    original = list(net.parameters())
    shared = list(noisy.parameters())
    assert len(shared) == len(original) and all(a is b for a, b in zip(shared, original, strict=True))
    x = torch.randn(5, 4)
    assert torch.equal(noisy.eval()(x), net.eval()(x))
    noisy.train()
    assert not torch.equal(noisy(x), noisy(x))


def test_add_hidden_noise_keeps_named_children_and_mode() -> None:
    net = nn.Sequential()
    net.add_module("fc1", nn.Linear(3, 3))
    net.add_module("act1", nn.Sigmoid())
    net.add_module("act1_noise", nn.Identity())  # a name collision
    net.eval()
    noisy = add_hidden_noise(net, 0.2, after=(nn.Sigmoid,))
    assert [n for n, _ in noisy.named_children()] == ["fc1", "act1", "act1_noise_", "act1_noise"]
    assert not noisy.training


# ----------------------------------------------------------------------------------------------- weight noise
class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 5)
        self.conv = nn.Conv1d(1, 2, 3)
        self.norm = nn.LayerNorm(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(torch.tanh(self.fc(x)))
        return self.conv(h[:, None, :]).flatten(1)


def test_weight_noise_eval_is_clean_train_is_noisy_and_gradients_reach_the_weight() -> None:
    torch.manual_seed(0)
    model = TwoLayer()
    clean = copy.deepcopy(model)
    weight = model.fc.weight
    add_weight_noise(model, 0.1)
    assert parametrize.is_parametrized(model.fc, "weight") and parametrize.is_parametrized(model.conv, "weight")
    assert not parametrize.is_parametrized(model.fc, "bias") and not parametrize.is_parametrized(model.norm)
    assert model.fc.parametrizations.weight.original is weight  # optimizers keep working
    x = torch.randn(7, 6)
    model.eval()
    assert torch.equal(model(x), clean.eval()(x))
    model.train()
    first, second = model(x), model(x)
    assert not torch.equal(first, second)
    first.sum().backward()
    assert model.fc.parametrizations.weight.original.grad is not None
    assert model.conv.parametrizations.weight.original.grad is not None
    remove_weight_noise(model)
    assert not parametrize.is_parametrized(model)
    assert model.fc.weight is weight and type(model.fc.weight) is nn.Parameter
    for name, p in clean.named_parameters():
        assert torch.equal(model.get_parameter(name), p)
    assert set(model.state_dict()) == set(clean.state_dict())


def test_weight_noise_selector_generator_and_double_registration() -> None:
    model = TwoLayer()
    add_weight_noise(model, 0.5, Selector(name_pattern=r"^fc\."), generator=gen())
    assert parametrize.is_parametrized(model.fc, "weight") and not parametrize.is_parametrized(model.conv)
    with pytest.raises(ValueError, match="already has weight noise"):
        add_weight_noise(model, 0.5, Selector(include="all", name_pattern=r"^fc\.parametrizations"))
    with pytest.raises(ValueError, match=r"Linear\.weight already has weight noise"):
        add_weight_noise(model, 0.5)
    assert not parametrize.is_parametrized(model.conv)  # nothing registered when one target is refused
    noise = model.fc.parametrizations.weight[0]
    assert isinstance(noise, WeightNoise) and noise.std == 0.5


def test_remove_weight_noise_leaves_other_parametrizations() -> None:
    class Double(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return 2 * w

    layer = nn.Linear(3, 3)
    parametrize.register_parametrization(layer, "weight", Double())
    add_weight_noise(layer, 0.1)
    assert len(layer.parametrizations.weight) == 2
    remove_weight_noise(layer)
    assert [type(p).__name__ for p in layer.parametrizations.weight] == ["Double"]


# ---------------------------------------------------------------------------------------------- target noise
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35, 1.0])
def test_smoothed_cross_entropy_is_cross_entropy_against_soft_targets(eps: float) -> None:
    logits = torch.randn(32, 7, generator=gen(), dtype=torch.float64)
    y = torch.randint(7, (32,), generator=gen(1))
    q = soft_targets(y, 7, eps).to(torch.float64)
    manual = -(q * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert smoothed_cross_entropy(eps)(logits, y).item() == pytest.approx(manual.item(), abs=1e-6)
    if eps == 0:
        assert torch.equal(smoothed_cross_entropy(0.0)(logits, y), F.cross_entropy(logits, y))


def test_soft_targets_formula() -> None:
    q = soft_targets(torch.tensor([2, 0]), 4, 0.2)
    assert torch.allclose(q.sum(dim=1), torch.ones(2))
    assert q[0, 2].item() == pytest.approx(1 - 3 / 4 * 0.2)
    assert q[0, 0].item() == pytest.approx(0.2 / 4)
    loss = smoothed_cross_entropy(0.1)
    assert loss.label_smoothing == 0.1 and "0.1" in repr(loss)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: InputNoise(-0.1), r"std must be .* got -0\.1"),
        (lambda: InputNoise(math.nan), r"std must be .* got nan"),
        (lambda: GaussianNoise(-1.0), r"std must be .* got -1\.0"),
        (lambda: add_hidden_noise(nn.Sequential(nn.ReLU()), -2.0), r"std must be .* got -2\.0"),
        (lambda: add_hidden_noise(nn.Sequential(nn.ReLU()), 0.1, after=nn.ReLU), r"after must be .* got"),
        (lambda: add_weight_noise(nn.Linear(2, 2), -0.5), r"std must be .* got -0\.5"),
        (lambda: smoothed_cross_entropy(1.5), r"label_smoothing must be in \[0, 1\], got 1\.5"),
        (lambda: soft_targets(torch.tensor([0]), 3, -0.1), r"eps must be in \[0, 1\], got -0\.1"),
        (lambda: soft_targets(torch.tensor([0]), 0, 0.1), r"num_classes must be .* got 0"),
        (lambda: soft_targets(torch.tensor([3]), 3, 0.1), r"class indices in \[0, 3\)"),
        (lambda: soft_targets(torch.tensor([0.5]), 3, 0.1), r"y must be a 1-D integer tensor"),
    ],
)
def test_bad_arguments_raise_value_error(make, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        make()


def test_add_hidden_noise_needs_a_sequential() -> None:
    with pytest.raises(TypeError, match=r"model must be an nn\.Sequential, got Linear"):
        add_hidden_noise(nn.Linear(2, 2), 0.1)  # type: ignore[arg-type]
