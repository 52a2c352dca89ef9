"""Max-norm: a projection after the step keeps every unit's incoming weights inside the ball."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from regopt.regularize import MaxNorm, Selector


def row_norms(w: torch.Tensor) -> torch.Tensor:
    return w.detach().flatten(1).norm(dim=1)


def test_projects_rows_pushed_outside_and_keeps_rows_inside():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    c = 1.0
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(0.1)  # every row well inside the ball
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    nn.functional.mse_loss(model(torch.randn(32, 6)), torch.randn(32, 2)).backward()
    with torch.no_grad():  # a gradient step that is large on one row of each layer, tiny elsewhere
        model[0].weight.grad.mul_(1e-3)[0] = -2.0
        model[2].weight.grad.mul_(1e-3)[1] = 3.0
    opt.step()
    before = [model[0].weight.detach().clone(), model[2].weight.detach().clone()]
    assert row_norms(before[0])[0] > c and row_norms(before[1])[1] > c  # the step pushed them out
    bias = model[0].bias.detach().clone()

    MaxNorm(c)(model)

    for layer, old, outside in ((model[0], before[0], [0]), (model[2], before[1], [1])):
        norms = row_norms(layer.weight)
        assert (norms <= c + 1e-6).all(), norms
        for i in range(old.shape[0]):
            if i in outside:
                assert norms[i] == pytest.approx(c, rel=1e-5)
                torch.testing.assert_close(layer.weight[i], old[i] * c / old[i].norm())  # same direction
            else:
                assert torch.equal(layer.weight[i], old[i])
    assert torch.equal(model[0].bias, bias)  # biases are not units' weight vectors


def test_conv_filters_are_projected_per_output_channel():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.mul_(10.0)
        conv.weight[2].mul_(1e-3)
    inside = conv.weight[2].detach().clone()
    MaxNorm(0.5)(conv)
    norms = row_norms(conv.weight)
    assert (norms <= 0.5 + 1e-6).all() and (norms[[0, 1, 3]] > 0.5 - 1e-5).all()
    assert torch.equal(conv.weight[2], inside)


def test_selector_dim_and_cache():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(5.0)
    MaxNorm(1.0, Selector(name_pattern=r"^1\."))(model)
    assert (model[0].weight == 5.0).all()
    assert (row_norms(model[1].weight) <= 1.0 + 1e-6).all()
    columns = MaxNorm(1.0, dim=1)
    columns(model)
    assert (model[0].weight.norm(dim=0) <= 1.0 + 1e-6).all()
    other = nn.Linear(2, 2)
    with torch.no_grad():
        other.weight.fill_(3.0)
    columns(other)  # a new model object is re-selected
    assert (other.weight.norm(dim=0) <= 1.0 + 1e-6).all()
    assert pickle.loads(pickle.dumps(columns)).c == 1.0
    with torch.no_grad():
        model[0].bias.fill_(-4.0)
    MaxNorm(2.0, Selector(include="all"))(model)  # 1-D tensors are clipped element by element
    torch.testing.assert_close(model[0].bias.detach(), torch.full((3,), -2.0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"c": 0.0}, r"c must be a finite number > 0, got 0\.0"),
        ({"c": -1}, r"c must be .*got -1"),
        ({"c": float("inf")}, r"c must be .*got inf"),
        ({"c": 1.0, "dim": -1}, r"dim must be an int >= 0, got -1"),
        ({"c": 1.0, "selector": "weights"}, r"selector must be a Selector"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaxNorm(**kwargs)


def test_dim_beyond_the_tensor_is_reported():
    with pytest.raises(ValueError, match=r"dim must be < the parameter's dimension 2, got 2"):
        MaxNorm(1.0, dim=2)(nn.Linear(2, 2))
