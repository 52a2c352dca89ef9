"""One table of (optimizer, kwargs) drives the torch.optim contract: convergence, state_dict round trip,
argument validation, LR schedulers, closures, missing gradients, parameter groups."""

from __future__ import annotations

import re

import pytest
import torch

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, RMSProp

# (id, class, kwargs, steps for Rosenbrock)
OPTIMIZERS_UNDER_TEST = [
    ("sgd", SGD, {"lr": 1e-3}, 4000),
    ("momentum", SGD, {"lr": 1e-3, "momentum": 0.9}, 3000),
    ("nesterov", SGD, {"lr": 1e-3, "momentum": 0.9, "nesterov": True}, 3000),
    ("adagrad", AdaGrad, {"lr": 0.5}, 3000),
    ("rmsprop", RMSProp, {"lr": 1e-2}, 3000),
    ("rmsprop-nesterov", RMSProp, {"lr": 1e-3, "momentum": 0.9, "nesterov": True}, 3000),
    ("adam", Adam, {"lr": 2e-2}, 3000),
    ("adamw", AdamW, {"lr": 2e-2, "weight_decay": 1e-4}, 3000),
    ("delta-bar-delta", DeltaBarDelta, {"lr": 1e-3, "kappa": 1e-5, "phi": 0.3}, 4000),
]
IDS = [case[0] for case in OPTIMIZERS_UNDER_TEST]
TABLE = [case[1:] for case in OPTIMIZERS_UNDER_TEST]


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def run(optimizer, params, loss_fn, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_converges_on_a_quadratic(cls, kwargs, steps):
    target = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    x = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    scale = torch.tensor([1.0, 5.0, 10.0], dtype=torch.float64)
    optimizer = cls([x], **{**kwargs, "lr": kwargs["lr"] * 10 if cls in (SGD, DeltaBarDelta) else kwargs["lr"]})
    run(optimizer, [x], lambda: (scale * (x - target) ** 2).sum(), 2000)
    assert (x.detach() - target).abs().max() < 1e-2


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_converges_on_rosenbrock(cls, kwargs, steps):
    xy = torch.nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
    optimizer = cls([xy], **kwargs)
    start = rosenbrock(xy).item()
    run(optimizer, [xy], lambda: rosenbrock(xy), steps)
    assert rosenbrock(xy).item() < 0.05 * start
    assert torch.isfinite(xy).all()


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(k)
    return torch.randn(16, 4, generator=gen), torch.randn(16, 2, generator=gen)


def _steps(model, optimizer, ks):
    for k in ks:
        x, y = _batch(k)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_state_dict_round_trip_continues_identically(cls, kwargs, steps, tmp_path):
    model = _model()
    optimizer = cls(model.parameters(), **kwargs)
    _steps(model, optimizer, range(5))
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.pt")
    _steps(model, optimizer, range(5, 12))

    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh = _model()
    fresh.load_state_dict(saved["model"])
    fresh_optimizer = cls(fresh.parameters(), **kwargs)
    fresh_optimizer.load_state_dict(saved["optimizer"])
    _steps(fresh, fresh_optimizer, range(5, 12))
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        for name, value in optimizer.state[p].items():
            assert torch.equal(value, fresh_optimizer.state[q][name]), name


BAD_ARGUMENTS = [
    (SGD, {"lr": -0.1}, "lr"),
    (SGD, {"lr": 0.1, "momentum": 1.0}, "momentum"),
    (SGD, {"lr": 0.1, "nesterov": True}, "nesterov"),
    (SGD, {"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
    (SGD, {"lr": 0.1, "compile": "yes"}, "compile"),
    (AdaGrad, {"lr": 0.0}, "lr"),
    (AdaGrad, {"eps": -1e-7}, "eps"),
    (RMSProp, {"rho": 1.0}, "rho"),
    (RMSProp, {"momentum": -0.1}, "momentum"),
    (RMSProp, {"eps": -1.0}, "eps"),
    (RMSProp, {"nesterov": True}, "nesterov"),
    (Adam, {"betas": (0.9, 1.0)}, "betas"),
    (Adam, {"betas": (-0.1, 0.999)}, "betas"),
    (Adam, {"eps": -1e-8}, "eps"),
    (AdamW, {"weight_decay": -0.01}, "weight_decay"),
    (DeltaBarDelta, {"kappa": -1.0}, "kappa"),
    (DeltaBarDelta, {"phi": 1.0}, "phi"),
    (DeltaBarDelta, {"theta": 1.5}, "theta"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"), BAD_ARGUMENTS, ids=[f"{c.__name__}-{n}" for c, _, n in BAD_ARGUMENTS]
)
def test_invalid_argument_names_itself_and_its_value(cls, kwargs, name):
    value = kwargs[name]
    with pytest.raises(ValueError, match=rf"^Invalid {name}: {re.escape(repr(value))} \("):
        cls([torch.nn.Parameter(torch.zeros(2))], **kwargs)


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_torch_schedulers_drive_lr(cls, kwargs, steps):
    scheduled, manual, constant = _model(), _model(), _model()
    optimizer = cls(scheduled.parameters(), **kwargs)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 / (1.0 + k))
    manual_optimizer = cls(manual.parameters(), **kwargs)
    for k in range(6):
        _steps(scheduled, optimizer, [k])
        decay.step()
        manual_optimizer.param_groups[0]["lr"] = kwargs["lr"] / (1.0 + k)
        _steps(manual, manual_optimizer, [k])
    _steps(constant, cls(constant.parameters(), **kwargs), range(6))
    for p, q in zip(scheduled.parameters(), manual.parameters(), strict=True):
        assert torch.equal(p, q)  # the scheduler's lr is the one the update uses
    assert any(not torch.equal(p, c) for p, c in zip(scheduled.parameters(), constant.parameters(), strict=True))

    optimizer = cls(_model().parameters(), **kwargs)
    step_lr = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(4):
        optimizer.step()
        step_lr.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(kwargs["lr"] * 0.25)

    optimizer = cls(_model().parameters(), **kwargs)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=kwargs["lr"], total_steps=10, cycle_momentum=False
    )
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        one_cycle.step()
    assert max(lrs) == pytest.approx(kwargs["lr"], rel=0.05) and lrs[0] < 0.1 * kwargs["lr"]


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_closure_is_evaluated_and_its_loss_returned(cls, kwargs, steps):
    model, reference = _model(), _model()
    optimizer, reference_optimizer = cls(model.parameters(), **kwargs), cls(reference.parameters(), **kwargs)
    x, y = _batch(0)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    _steps(reference, reference_optimizer, [0])
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(_model()(x), y).item())
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_parameters_without_gradient_are_skipped(cls, kwargs, steps):
    used, unused, also_used = (torch.nn.Parameter(torch.randn(3)) for _ in range(3))
    optimizer = cls([used, unused, also_used], **kwargs)
    before = unused.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        (used.sum() ** 2 + (also_used**2).sum()).backward()
        optimizer.step()
    assert unused.grad is None
    assert torch.equal(unused, before)
    assert not torch.equal(used, torch.zeros(3))


@pytest.mark.parametrize(("cls", "kwargs", "steps"), TABLE, ids=IDS)
def test_parameter_groups_keep_their_own_settings(cls, kwargs, steps):
    """Two groups on a separable loss behave exactly like two optimizers, one per group, with their own lr."""
    gen = torch.Generator().manual_seed(0)
    a0, b0 = torch.randn(5, generator=gen), torch.randn(3, 2, generator=gen)

    def loss(a, b):
        return ((a - 1) ** 2).sum() + (b.sin() ** 2).sum()

    a, b = torch.nn.Parameter(a0.clone()), torch.nn.Parameter(b0.clone())
    grouped = cls([{"params": [a]}, {"params": [b], "lr": kwargs["lr"] * 3}], **kwargs)
    a_alone, b_alone = torch.nn.Parameter(a0.clone()), torch.nn.Parameter(b0.clone())
    first = cls([a_alone], **kwargs)
    second = cls([b_alone], **{**kwargs, "lr": kwargs["lr"] * 3})
    for _ in range(5):
        for optimizer in (grouped, first, second):
            optimizer.zero_grad()
        loss(a, b).backward()
        loss(a_alone, b_alone).backward()
        for optimizer in (grouped, first, second):
            optimizer.step()
    assert torch.equal(a, a_alone) and torch.equal(b, b_alone)
    assert not torch.equal(b, b0)
