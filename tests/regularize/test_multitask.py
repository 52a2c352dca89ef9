"""Multi-task learning: shared vs task parameters, the weighted loss by hand, gradient isolation, digit tasks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regopt.regularize.multitask import (
    DIGIT_TASK_CLASSES,
    MultiTaskLoss,
    MultiTaskModel,
    digit_tasks,
    stack_targets,
    unstack_targets,
)


def _model() -> MultiTaskModel:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU())
    return MultiTaskModel(trunk, {task: nn.Linear(12, k) for task, k in DIGIT_TASK_CLASSES.items()})


def _loss() -> MultiTaskLoss:
    return MultiTaskLoss({task: F.cross_entropy for task in DIGIT_TASK_CLASSES}, {"digit": 1.0, "parity": 0.5})


def test_forward_shapes_and_order():
    model = _model()
    outputs = model(torch.randn(5, 8))
    assert list(outputs) == ["digit", "parity", "greater_than_4"] == list(model.tasks)
    assert {task: tuple(out.shape) for task, out in outputs.items()} == {
        "digit": (5, 10),
        "parity": (5, 2),
        "greater_than_4": (5, 2),
    }


def test_trunk_runs_once_per_batch():
    calls = []
    trunk = nn.Linear(4, 3)
    trunk.register_forward_hook(lambda *_: calls.append(1))
    MultiTaskModel(trunk, {"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)})(torch.randn(2, 4))
    assert len(calls) == 1


def test_shared_and_task_parameters_are_disjoint_and_complete():
    model = _model()
    shared = {id(p) for p in model.shared_parameters()}
    per_task = {task: {id(p) for p in model.task_parameters(task)} for task in model.tasks}
    assert shared == {id(p) for p in model.trunk.parameters()} and len(shared) == 4
    groups = [shared, *per_task.values()]
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert not a & b
    assert set().union(*groups) == {id(p) for p in model.parameters()}
    assert sum(len(g) for g in groups) == len(list(model.parameters()))


def test_unknown_task_names_the_tasks():
    with pytest.raises(KeyError, match=r"unknown task 'parityy' \(tasks: digit, parity, greater_than_4\)"):
        _model().task_parameters("parityy")


@pytest.mark.parametrize(
    ("heads", "error", "message"),
    [
        ({}, ValueError, r"heads must be a non-empty mapping"),
        ({"a.b": nn.Linear(2, 2)}, ValueError, r"task names must be non-empty strings without '.', got 'a.b'"),
        ({"": nn.Linear(2, 2)}, ValueError, r"got ''"),
        ({"a": lambda h: h}, TypeError, r"head 'a' must be an nn.Module, got function"),
    ],
)
def test_model_bad_arguments(heads, error, message):
    with pytest.raises(error, match=message):
        MultiTaskModel(nn.Linear(2, 2), heads)


def test_loss_is_the_weighted_sum_by_hand():
    model = _model()
    x, y = torch.randn(6, 8), torch.tensor([0, 1, 4, 5, 8, 9])
    targets = digit_tasks(y)
    outputs = model(x)
    loss_fn = _loss()
    total = loss_fn(outputs, targets)
    by_hand = {task: F.cross_entropy(outputs[task], targets[task]) for task in DIGIT_TASK_CLASSES}
    expected = 1.0 * by_hand["digit"] + 0.5 * by_hand["parity"] + 1.0 * by_hand["greater_than_4"]
    # three float32 losses weighted and added, maybe in another order than by hand: a few ulps of the total
    # (1e-6 was 4 ulps of the total, 3.5); a parity weight of 1 instead of 0.5 is off by 0.38
    torch.testing.assert_close(total, expected, rtol=16 * torch.finfo(expected.dtype).eps, atol=0)
    assert loss_fn.weights == {"digit": 1.0, "parity": 0.5, "greater_than_4": 1.0}
    assert loss_fn.last == pytest.approx({task: value.item() for task, value in by_hand.items()})
    # the same from one stacked (N, T) target tensor, as a Trainer batches it
    torch.testing.assert_close(loss_fn(outputs, stack_targets(targets)), total, rtol=0, atol=0)


def test_gradient_of_one_task_reaches_only_its_head_and_the_trunk():
    model = _model()
    targets = digit_tasks(torch.tensor([2, 3, 7]))
    loss_fn = MultiTaskLoss({task: F.cross_entropy for task in DIGIT_TASK_CLASSES}, {"digit": 0, "parity": 0})
    loss_fn(model(torch.randn(3, 8)), targets).backward()  # only greater_than_4 has weight
    for p in model.task_parameters("greater_than_4"):
        assert p.grad is not None and p.grad.abs().sum() > 0
    for p in model.shared_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    for task in ("digit", "parity"):
        for p in model.task_parameters(task):
            assert p.grad is None or not p.grad.any()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(torch.randn(3, 8))["parity"], targets["parity"]).backward()
    assert all(p.grad is None for task in ("digit", "greater_than_4") for p in model.task_parameters(task))


def test_training_on_all_tasks_learns_them():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, :3].sum(1) * 2 + 4.5).clamp(0, 9).long()  # digits that depend on the input
    targets = stack_targets(digit_tasks(y))
    model, loss_fn = _model(), _loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        optimizer.zero_grad()
        loss = loss_fn(model(x), targets)
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss_fn.last
    assert all(loss_fn.last[task] < 0.8 * first[task] for task in DIGIT_TASK_CLASSES)  # parity is the hardest


def test_loss_task_names_must_match():
    loss_fn = MultiTaskLoss({"a": F.mse_loss, "b": F.mse_loss})
    z = torch.zeros(2)
    with pytest.raises(
        ValueError, match=r"outputs do not match the tasks \['a', 'b'\]: missing \['b'\], unexpected \['c'\]"
    ):
        loss_fn({"a": z, "c": z}, {"a": z, "b": z})
    with pytest.raises(
        ValueError, match=r"targets do not match the tasks \['a', 'b'\]: missing \[\], unexpected \['c'\]"
    ):
        loss_fn({"a": z, "b": z}, {"a": z, "b": z, "c": z})
    with pytest.raises(ValueError, match=r"stacked targets must have shape \(N, 2\) for tasks \['a', 'b'\]"):
        loss_fn({"a": z, "b": z}, torch.zeros(2, 3))
    assert loss_fn.last == {}


@pytest.mark.parametrize(
    ("losses", "weights", "error", "message"),
    [
        ({}, None, ValueError, r"losses must be a non-empty mapping"),
        ({"a": 1.0}, None, TypeError, r"loss of task 'a' must be callable, got float"),
        ({"a": F.mse_loss}, {"b": 1.0}, ValueError, r"weights name tasks \['b'\] that have no loss"),
        ({"a": F.mse_loss}, {"a": -1.0}, ValueError, r"weight of task 'a' must be a finite number >= 0, got -1.0"),
        ({"a": F.mse_loss}, {"a": float("nan")}, ValueError, r"got nan"),
    ],
)
def test_loss_bad_arguments(losses, weights, error, message):
    with pytest.raises(error, match=message):
        MultiTaskLoss(losses, weights)


def test_digit_tasks_values():
    y = torch.arange(10, dtype=torch.int32)
    tasks = digit_tasks(y)
    assert list(tasks) == list(DIGIT_TASK_CLASSES)
    assert all(t.dtype == torch.int64 for t in tasks.values())
    assert tasks["digit"].tolist() == list(range(10))
    assert tasks["parity"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert tasks["greater_than_4"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    for task, k in DIGIT_TASK_CLASSES.items():
        assert int(tasks[task].max()) == k - 1


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (torch.tensor([0.0, 1.0]), r"1-D integer tensor of digit labels, got a torch.float32 tensor of shape \(2,\)"),
        (torch.tensor([[1, 2]]), r"got a torch.int64 tensor of shape \(1, 2\)"),
        (torch.tensor([True]), r"got a bool tensor"),
        (torch.tensor([3, 10]), r"digit labels must be in 0..9, got values from 3 to 10"),
        (torch.tensor([-1, 2]), r"got values from -1 to 2"),
    ],
)
def test_digit_tasks_bad_labels(y, message):
    with pytest.raises(ValueError, match=message):
        digit_tasks(y)


def test_stack_and_unstack_round_trip():
    targets = digit_tasks(torch.tensor([7, 2, 5]))
    stacked = stack_targets(targets)
    assert stacked.shape == (3, 3) and stacked.dtype == torch.int64
    assert stacked.tolist() == [[7, 1, 1], [2, 0, 0], [5, 1, 1]]
    back = unstack_targets(stacked, list(targets))
    assert all(torch.equal(back[task], targets[task]) for task in targets)
    reordered = stack_targets(targets, ["parity", "digit", "greater_than_4"])
    assert reordered[:, 0].tolist() == [1, 0, 1]
    mixed = stack_targets({"label": torch.tensor([1, 2]), "value": torch.tensor([0.5, 1.5])})
    assert mixed.dtype == torch.float32 and mixed.tolist() == [[1.0, 0.5], [2.0, 1.5]]


def test_stack_targets_bad_input():
    with pytest.raises(ValueError, match=r"target of task 'b' must be a 1-D tensor of length 2"):
        stack_targets({"a": torch.zeros(2), "b": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        stack_targets({"a": torch.zeros(2)}, ["a", "c"])
