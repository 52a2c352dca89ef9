"""Greedy supervised pretraining: freezing, growing a network by one layer, and the staged procedure."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt import SGD, Adam
from regopt.pretraining import freeze, greedy_supervised_pretraining, grow_mlp, unfreeze


def shallow(width: int = 16, inputs: int = 6, outputs: int = 3) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(inputs, width), act1=nn.ReLU(), head=nn.Linear(width, outputs))
    )


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def one_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_freeze_and_unfreeze_return_the_module_and_toggle_requires_grad():
    model = shallow()
    assert freeze(model.fc1) is model.fc1
    assert not any(p.requires_grad for p in model.fc1.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert unfreeze(model.fc1) is model.fc1
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: SGD(params, lr=0.1, momentum=0.9),
        lambda params: Adam(params, lr=0.01),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    ],
    ids=["regopt.SGD", "regopt.Adam", "torch.SGD"],
)
def test_frozen_parameters_do_not_move_under_an_optimizer_over_all_parameters(make_optimizer):
    torch.manual_seed(0)
    model = shallow()
    optimizer = make_optimizer(model.parameters())
    one_step(model, optimizer)  # momentum / moment state exists for every parameter
    freeze(model.fc1)
    frozen, head = snapshot(model.fc1), snapshot(model.head)
    for _ in range(3):
        one_step(model, optimizer)
    for name, before in frozen.items():
        assert torch.equal(getattr(model.fc1, name), before), name
    assert any(not torch.equal(getattr(model.head, n), b) for n, b in head.items())  # the rest still trains
    unfreeze(model.fc1)
    one_step(model, optimizer)
    assert not torch.equal(model.fc1.weight, frozen["weight"])


def test_freeze_clears_a_stale_gradient():
    model = shallow()
    F.cross_entropy(model(torch.randn(4, 6)), torch.zeros(4, dtype=torch.long)).backward()
    freeze(model)
    assert all(p.grad is None for p in model.parameters())


def test_grow_mlp_keeps_the_layers_and_replaces_the_head():
    torch.manual_seed(0)
    model = shallow(width=16)
    weights = snapshot(model)
    deeper = grow_mlp(model, 32)
    assert [name for name, _ in deeper.named_children()] == ["flatten", "fc1", "act1", "fc2", "act2", "head"]
    assert deeper.fc1 is model.fc1 and deeper.act1 is model.act1  # the same objects ...
    assert torch.equal(deeper.fc1.weight, weights["fc1.weight"])  # ... with the same weights
    assert (deeper.fc2.in_features, deeper.fc2.out_features) == (16, 32)
    assert isinstance(deeper.act2, nn.ReLU)
    assert deeper.head is not model.head and (deeper.head.in_features, deeper.head.out_features) == (32, 3)
    assert deeper(torch.randn(5, 6)).shape == (5, 3)
    assert model(torch.randn(5, 6)).shape == (5, 3)  # the old network still works with its old head
    assert all(p.requires_grad for p in deeper.parameters())


def test_grow_mlp_with_equal_width_still_gets_a_fresh_head():
    model = shallow(width=16)
    deeper = grow_mlp(model, 16, nn.Tanh, freeze_existing=True)
    assert deeper.head is not model.head
    assert isinstance(deeper.act2, nn.Tanh)
    assert not any(p.requires_grad for p in deeper.fc1.parameters())
    assert all(p.requires_grad for p in [*deeper.fc2.parameters(), *deeper.head.parameters()])


def test_grow_mlp_on_unnamed_children_and_the_lab_mlp():
    deeper = grow_mlp(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), 8)
    assert [name for name, _ in deeper.named_children()] == ["0", "1", "fc2", "act2", "2"]
    assert deeper(torch.randn(3, 4)).shape == (3, 2)
    from regopt.lab.config import MlpConfig
    from regopt.lab.models.mlp import build_mlp

    lab = build_mlp(MlpConfig(name="mlp", widths=[8, 8], batch_norm=True), (5,), 4)
    grown = grow_mlp(lab, 8)
    assert [name for name, _ in grown.named_children()][-3:] == ["fc3", "act3", "head"]
    assert grown(torch.randn(3, 5)).shape == (3, 4)


def test_grow_mlp_rejects_a_model_without_a_linear_head():
    with pytest.raises(ValueError, match=r"last child must be the nn\.Linear output layer, got ReLU"):
        grow_mlp(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), 4)
    with pytest.raises(ValueError, match="width"):
        grow_mlp(shallow(), 0)


@pytest.mark.parametrize(("freeze_existing", "finetune"), [(False, True), (True, True), (True, False)])
def test_greedy_procedure_trains_each_stage_with_growing_depth(freeze_existing, finetune):
    calls: list[tuple[int, int, int]] = []  # (hidden layers, trainable tensors, all tensors) at each call

    def train(model: nn.Module) -> None:
        hidden = sum(isinstance(m, nn.Linear) for m in model.children()) - 1
        params = list(model.parameters())
        calls.append((hidden, sum(p.requires_grad for p in params), len(params)))
        optimizer = torch.optim.SGD([p for p in params if p.requires_grad], lr=0.05)
        for _ in range(5):
            one_step(model, optimizer)

    torch.manual_seed(0)
    model = greedy_supervised_pretraining(
        shallow, [16, 16, 8], train, freeze_existing=freeze_existing, finetune=finetune
    )
    assert [hidden for hidden, _, _ in calls] == [1, 2, 3, 4] + ([4] if finetune else [])
    assert isinstance(model, nn.Sequential) and model(torch.randn(2, 6)).shape == (2, 3)
    assert model.fc4.out_features == 8
    if freeze_existing:
        assert [trainable for _, trainable, _ in calls[:4]] == [4, 4, 4, 4]  # new layer + head only
    else:
        assert all(trainable == total for _, trainable, total in calls)
    if finetune:
        assert calls[-1][1] == calls[-1][2] == 10  # everything trains in the fine-tuning stage
        assert all(p.requires_grad for p in model.parameters())
    else:
        assert not any(p.requires_grad for p in model.fc1.parameters())


def test_greedy_pretraining_learns_a_task():
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    y = (x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()  # 3 classes, not linearly separable

    def train(model: nn.Module) -> None:
        optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
        for _ in range(100):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

    model = greedy_supervised_pretraining(lambda: shallow(32), [32, 32], train, freeze_existing=True)
    error = (model(x).argmax(1) != y).float().mean().item()
    assert error < 0.1
