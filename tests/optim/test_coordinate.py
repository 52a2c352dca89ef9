"""CoordinateDescent: one block per step, seeded random order, exact reduction to the inner optimizer."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import StepLR

from regopt.optim.coordinate import CoordinateDescent


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def _data(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randn(n, 1, generator=g, dtype=torch.float64)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    (model(x) - y).pow(2).mean().backward()
    opt.step()


def _snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def test_cyclic_steps_change_one_block_at_a_time():
    model = _mlp()
    blocks = CoordinateDescent.blocks_by_module(model)
    assert [len(b) for b in blocks] == [2, 2]
    opt = CoordinateDescent(blocks, _sgd)
    x, y = _data()
    for expected_block in [0, 1, 0, 1]:
        assert opt.current_block == expected_block
        before = [_snapshot(b) for b in blocks]
        _train_step(model, opt, x, y)
        for i, block in enumerate(blocks):
            unchanged = [torch.equal(p, q) for p, q in zip(block, before[i], strict=True)]
            assert unchanged == ([False, False] if i == expected_block else [True, True])


def _changed_block(blocks, before) -> int:
    changed = [i for i, b in enumerate(blocks) if not all(torch.equal(p, q) for p, q in zip(b, before[i], strict=True))]
    assert len(changed) == 1
    return changed[0]


def _visit_sequence(seed: int, steps: int) -> list[int]:
    model = _mlp()
    blocks = [[p] for p in model.parameters()]  # 4 blocks: W1, b1, W2, b2
    opt = CoordinateDescent(blocks, _sgd, order="random", seed=seed)
    x, y = _data()
    visits = []
    for _ in range(steps):
        before = [_snapshot(b) for b in blocks]
        announced = opt.current_block
        _train_step(model, opt, x, y)
        visits.append(_changed_block(blocks, before))
        assert visits[-1] == announced
    return visits


def test_random_order_follows_the_seeded_generator():
    g = torch.Generator().manual_seed(7)
    expected = [int(torch.randint(4, (1,), generator=g).item()) for _ in range(20)]
    visits = _visit_sequence(7, 20)
    assert visits == expected
    assert visits == _visit_sequence(7, 20)
    assert visits != _visit_sequence(8, 20)
    assert set(visits) == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "factory",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, weight_decay=1e-3),
    ],
    ids=["sgd-nesterov", "adam", "rmsprop"],
)
def test_one_block_is_the_inner_optimizer(factory):
    model_a, model_b = _mlp(), _mlp()
    reference = factory(list(model_a.parameters()))
    wrapped = CoordinateDescent([list(model_b.parameters())], factory)
    for step in range(10):
        x, y = _data(step)
        _train_step(model_a, reference, x, y)
        _train_step(model_b, wrapped, x, y)
    assert all(torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True))
    assert wrapped.current_block == 0
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        for key, value in reference.state[p].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(wrapped.state[q][key]))


@pytest.mark.parametrize("order", ["cyclic", "random"])
def test_converges_on_a_separable_quadratic(order):
    # f(x) = sum_i a_i (x_i - c_i)^2 over three blocks of different sizes.
    sizes = [2, 3, 4]
    g = torch.Generator().manual_seed(0)
    xs = [nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64)) for n in sizes]
    cs = [torch.randn(n, generator=g, dtype=torch.float64) for n in sizes]
    a = [torch.rand(n, generator=g, dtype=torch.float64) * 2 + 1 for n in sizes]
    opt = CoordinateDescent([[x] for x in xs], _sgd, order=order, seed=1)

    def closure():
        opt.zero_grad()
        loss = sum((ai * (xi - ci) ** 2).sum() for ai, xi, ci in zip(a, xs, cs, strict=True))
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(299):
        opt.step(closure)
    assert closure().item() < 1e-8 * first
    for x, c in zip(xs, cs, strict=True):
        torch.testing.assert_close(x.detach(), c, atol=1e-4, rtol=0)


def test_closure_works_with_lbfgs_blocks():
    xs = [nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float64)) for _ in range(2)]
    opt = CoordinateDescent([[x] for x in xs], lambda ps: torch.optim.LBFGS(ps, lr=1, max_iter=20))

    def closure():
        opt.zero_grad()
        loss = sum(((x - 1) ** 2).sum() for x in xs)
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(xs[0].detach(), torch.ones(2, dtype=torch.float64))
    assert torch.equal(xs[1].detach(), torch.tensor([3.0, -2.0], dtype=torch.float64))


@pytest.mark.parametrize("order", ["cyclic", "random"])
def test_state_dict_round_trip_mid_run_continues_identically(order):
    def adam(ps):
        return torch.optim.Adam(ps, lr=0.01)

    model = _mlp()
    opt = CoordinateDescent([[p] for p in model.parameters()], adam, order=order, seed=3)
    for step in range(5):
        _train_step(model, opt, *_data(step))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_model = _mlp()
    resumed_model.load_state_dict(saved["model"])
    resumed = CoordinateDescent([[p] for p in resumed_model.parameters()], adam, order=order, seed=99)
    resumed.load_state_dict(saved["opt"])
    assert resumed.current_block == opt.current_block
    for step in range(5, 15):
        _train_step(model, opt, *_data(step))
        _train_step(resumed_model, resumed, *_data(step))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True))
    assert resumed.current_block == opt.current_block


def test_step_lr_changes_the_inner_learning_rates():
    model = _mlp()
    opt = CoordinateDescent(CoordinateDescent.blocks_by_module(model), _sgd)
    assert all(g is inner.param_groups[0] for g, inner in zip(opt.param_groups, opt.inners, strict=True))
    scheduler = StepLR(opt, step_size=1, gamma=0.5)
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler.step() before optimizer.step()" warning
        _train_step(model, opt, x, y)
        scheduler.step()
    assert [inner.param_groups[0]["lr"] for inner in opt.inners] == [0.05, 0.05]

    # The next step of block 1 really uses lr 0.05.
    opt.zero_grad()
    (model(x) - y).pow(2).mean().backward()
    before = model[2].weight.detach().clone()
    grad = model[2].weight.grad.clone()
    opt.step()
    torch.testing.assert_close(model[2].weight.detach(), before - 0.05 * grad, atol=1e-15, rtol=0)

    # After load_state_dict the wrapper's groups are still the inner optimizers' own dicts.
    opt.load_state_dict(opt.state_dict())
    assert all(g is inner.param_groups[0] for g, inner in zip(opt.param_groups, opt.inners, strict=True))
    scheduler.step()
    assert [inner.param_groups[0]["lr"] for inner in opt.inners] == [0.025, 0.025]


def test_zero_grad_clears_every_block():
    model = _mlp()
    opt = CoordinateDescent(CoordinateDescent.blocks_by_module(model), _sgd)
    (model(_data()[0]) ** 2).sum().backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_blocks_by_module_one_block_per_layer_and_shared_parameters_once():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2, bias=False), nn.Linear(2, 2))
    model[3].weight = model[2].weight  # tied
    blocks = CoordinateDescent.blocks_by_module(model)
    assert [[id(p) for p in b] for b in blocks] == [
        [id(model[0].weight), id(model[0].bias)],
        [id(model[2].weight)],
        [id(model[3].bias)],
    ]


def test_deepcopy_keeps_blocks_and_position():
    model = _mlp()
    opt = CoordinateDescent([[p] for p in model.parameters()], _sgd, order="random", seed=5)
    _train_step(model, opt, *_data())
    clone = copy.deepcopy(opt)
    assert clone.current_block == opt.current_block
    assert len(clone.inners) == 4
    assert clone.param_groups[0] is clone.inners[0].param_groups[0]
    assert clone._draw() == opt._draw()


@pytest.mark.parametrize(
    ("blocks", "kwargs", "pattern"),
    [
        (lambda ps: [ps[:2], ps[1:]], {}, r"blocks must be disjoint: .* in blocks 0 and 1"),
        (lambda ps: [ps, []], {}, r"blocks\[1\] is empty"),
        (lambda ps: [], {}, r"blocks must contain at least one block"),
        (lambda ps: [ps], {"order": "zigzag"}, r"order must be 'cyclic' or 'random', got 'zigzag'"),
        (lambda ps: [ps], {"seed": 1.5}, r"seed must be an integer, got 1\.5"),
        (lambda ps: [ps], {"inner": lambda b: b}, r"inner must return a torch.optim.Optimizer"),
    ],
)
def test_bad_arguments_raise(blocks, kwargs, pattern):
    params = list(_mlp().parameters())
    inner = kwargs.pop("inner", _sgd)
    with pytest.raises(ValueError, match=pattern):
        CoordinateDescent(blocks(params), inner, **kwargs)


def test_add_param_group_is_refused():
    opt = CoordinateDescent([list(_mlp().parameters())], _sgd)
    with pytest.raises(NotImplementedError, match="one more block"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(1))]})


def _adam(ps):
    return torch.optim.Adam(ps, lr=0.01)


def test_state_dict_has_torchs_layout_with_the_position_in_the_first_group():
    model = _mlp()
    opt = CoordinateDescent(CoordinateDescent.blocks_by_module(model), _adam, order="random", seed=5)
    for step in range(2):  # seed 5 draws blocks 1, 0, 1: both stepped
        _train_step(model, opt, *_data(step))
    saved = opt.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2, 3]]
    assert [g["block"] for g in saved["param_groups"]] == [0, 1]
    params = list(model.parameters())
    assert sorted(saved["state"]) == [0, 1, 2, 3]
    for index, entry in saved["state"].items():
        assert torch.equal(entry["exp_avg"], opt.state[params[index]]["exp_avg"])
    position = saved["param_groups"][0]["coordinate"]
    assert position["order"] == "random" and position["current_block"] == opt.current_block == 1
    assert torch.equal(position["generator"], opt.generator.get_state())
    assert "coordinate" not in saved["param_groups"][1]


def test_a_state_dict_in_the_layout_before_issue_19_loads_and_continues_identically():
    model = _mlp()
    opt = CoordinateDescent([[p] for p in model.parameters()], _adam, order="random", seed=3)
    for step in range(5):
        _train_step(model, opt, *_data(step))
    old = {  # what CoordinateDescent.state_dict returned before issue 19
        "inner": [inner.state_dict() for inner in opt.inners],
        "order": "random",
        "current_block": opt.current_block,
        "generator": opt.generator.get_state(),
    }
    resumed_model = copy.deepcopy(model)
    resumed = CoordinateDescent([[p] for p in resumed_model.parameters()], _adam, order="random", seed=99)
    resumed.load_state_dict(copy.deepcopy(old))
    for step in range(5, 12):
        _train_step(model, opt, *_data(step))
        _train_step(resumed_model, resumed, *_data(step))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True))


def test_a_state_dict_of_other_blocks_or_order_is_refused():
    model = _mlp()
    opt = CoordinateDescent(CoordinateDescent.blocks_by_module(model), _adam)
    per_parameter = CoordinateDescent([[p] for p in model.parameters()], _adam)
    with pytest.raises(ValueError, match=r"belong to blocks \[0, 1, 2, 3\], this optimizer's to blocks \[0, 1\]"):
        opt.load_state_dict(per_parameter.state_dict())
    random = CoordinateDescent(CoordinateDescent.blocks_by_module(model), _adam, order="random")
    with pytest.raises(ValueError, match="saved with order 'random', this optimizer uses 'cyclic'"):
        opt.load_state_dict(random.state_dict())


def test_init_state_initializes_every_block_in_place():
    model = _mlp()
    params = list(model.parameters())
    opt = CoordinateDescent([[p] for p in params], _adam, order="random", seed=3)
    stepped = params[opt.current_block]
    _train_step(model, opt, *_data())  # one block stepped: Adam's step count 1, nonzero moments
    for p in params:
        p.grad = None
    params[3].grad = grad = torch.ones_like(params[3])
    before, block, generator = _snapshot(params), opt.current_block, opt.generator.get_state()
    exp_avg = opt.state[stepped]["exp_avg"].clone()
    opt.init_state()
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
    assert opt.current_block == block and torch.equal(opt.generator.get_state(), generator)
    assert params[3].grad is grad and all(p.grad is None for p in params[:3])
    assert torch.equal(opt.state[stepped]["exp_avg"], exp_avg) and exp_avg.any()  # a stepped block is left alone
    for p in params:
        if p is not stepped:
            assert opt.state[p]["step"].item() == 1 and not opt.state[p]["exp_avg"].any()
    assert [inner.param_groups[0]["lr"] for inner in opt.inners] == [0.01] * 4
