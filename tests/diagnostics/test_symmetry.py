"""Weight-space symmetry: permuting hidden units and rescaling ReLU units leave the function unchanged."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from regopt.diagnostics.symmetry import (
    check_symmetries,
    count_equivalent_arrangements,
    hidden_layer_indices,
    permute_hidden_units,
    rescale_relu_unit,
)


def mlp(activation: type[nn.Module] = nn.ReLU, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), activation(), nn.Linear(5, 6), activation(), nn.Linear(6, 2)).to(dtype)


def inputs(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(32, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Sigmoid])
@pytest.mark.parametrize("layer_index", [0, 2])
def test_permuting_hidden_units_leaves_outputs_unchanged(activation: type[nn.Module], layer_index: int) -> None:
    model, x = mlp(activation), inputs()
    before = copy.deepcopy(model)
    width = model[layer_index].out_features
    perm = torch.randperm(width, generator=torch.Generator().manual_seed(3))
    twin = permute_hidden_units(model, layer_index, perm)
    assert max_diff(model, twin, x) < 1e-12
    assert not params_equal(model, twin)  # a different point of weight space
    torch.testing.assert_close(twin[layer_index].weight, model[layer_index].weight[perm], rtol=0, atol=0)
    assert params_equal(model, before)  # the original is untouched


def test_permutation_moves_per_unit_batchnorm_layernorm_and_prelu_parameters() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 6), nn.BatchNorm1d(6), nn.LayerNorm(6), nn.PReLU(6), nn.Linear(6, 4), nn.PReLU(), nn.Linear(4, 1)
    ).double()
    with torch.no_grad():
        for p in [model[1].weight, model[1].bias, model[2].weight, model[2].bias, model[3].weight]:
            p.uniform_(0.1, 1.0)
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    model.eval()
    x = inputs()[:, :3]
    for index, width in ((0, 6), (4, 4)):
        twin = permute_hidden_units(model, index, torch.randperm(width))
        assert max_diff(model, twin, x) < 1e-12


def test_permutation_through_an_unknown_module_with_parameters_is_refused() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Conv1d(1, 1, 1), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"model\[1\] \(Conv1d\)"):
        permute_hidden_units(model, 0, [1, 0, 2, 3])


@pytest.mark.parametrize("activation", [nn.ReLU, nn.LeakyReLU, nn.Identity])
@pytest.mark.parametrize("alpha", [0.1, 3.7])
def test_rescaling_a_positively_homogeneous_unit_leaves_outputs_unchanged(
    activation: type[nn.Module], alpha: float
) -> None:
    model, x = mlp(activation), inputs()
    twin = rescale_relu_unit(model, 2, unit=4, alpha=alpha)
    assert max_diff(model, twin, x) < 1e-12
    torch.testing.assert_close(twin[2].weight[4], alpha * model[2].weight[4])
    torch.testing.assert_close(twin[2].bias[4], alpha * model[2].bias[4])
    torch.testing.assert_close(twin[4].weight[:, 4], model[4].weight[:, 4] / alpha)
    torch.testing.assert_close(twin[4].weight[:, :4], model[4].weight[:, :4], rtol=0, atol=0)


def test_rescaling_a_tanh_unit_changes_the_output() -> None:
    model, x = mlp(nn.Tanh), inputs()
    with pytest.raises(ValueError, match="not positively homogeneous"):
        rescale_relu_unit(model, 0, unit=1, alpha=2.0)
    twin = rescale_relu_unit(model, 0, unit=1, alpha=2.0, strict=False)
    assert max_diff(model, twin, x) > 1e-3


def test_count_equivalent_arrangements_is_the_product_of_factorials() -> None:
    assert count_equivalent_arrangements([3, 3]) == 36
    assert count_equivalent_arrangements([4] * 3) == math.factorial(4) ** 3  # n!^m
    assert count_equivalent_arrangements([5, 2]) == 240
    assert count_equivalent_arrangements([]) == 1
    with pytest.raises(ValueError, match="widths"):
        count_equivalent_arrangements([3, -1])


def test_check_symmetries_in_float32() -> None:
    relu = check_symmetries(mlp(nn.ReLU, torch.float32), inputs(torch.float32))
    assert relu["hidden_layers"] == [0, 2] and relu["widths"] == [5, 6]
    assert relu["arrangements"] == math.factorial(5) * math.factorial(6)
    assert relu["positively_homogeneous"]
    assert relu["permutation"] < 1e-5 * max(1.0, relu["output_scale"])
    assert relu["rescaling"] < 1e-5 * max(1.0, relu["output_scale"])
    tanh = check_symmetries(mlp(nn.Tanh, torch.float32), inputs(torch.float32))
    assert tanh["permutation"] < 1e-5 and not tanh["positively_homogeneous"]
    assert tanh["rescaling"] > 1e-3


def test_hidden_layers_and_bad_arguments() -> None:
    model = mlp()
    assert hidden_layer_indices(model) == [0, 2]
    with pytest.raises(ValueError, match="last Linear"):
        permute_hidden_units(model, 4, list(range(2)))
    with pytest.raises(ValueError, match=r"model\[1\] must be nn.Linear"):
        permute_hidden_units(model, 1, list(range(5)))
    with pytest.raises(ValueError, match="permutation of range"):
        permute_hidden_units(model, 0, [0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="alpha"):
        rescale_relu_unit(model, 0, 0, alpha=0.0)
    with pytest.raises(ValueError, match="unit"):
        rescale_relu_unit(model, 0, 5, alpha=2.0)
    with pytest.raises(ValueError, match=r"nn\.Sequential"):
        permute_hidden_units(nn.Linear(2, 2), 0, [0, 1])  # type: ignore[arg-type]
