"""IllConditioningMonitor without a probe batch: it reuses the training step's gradient and its graph."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from regopt.diagnostics.conditioning import IllConditioningMonitor, IllConditioningWarning
from regopt.lab.data import Dataset
from regopt.lab.trainer import Trainer


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Softplus(), nn.Linear(4, 3)).double()


def objective(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy plus an L2 penalty, as the Trainer's ``total``."""
    return F.cross_entropy(model(x), y) + 0.01 * sum((p**2).sum() for p in model.parameters())


def exact_ghg(model: nn.Module, names: list[str], x: Tensor, y: Tensor) -> tuple[float, float]:
    """g'Hg and g'g from the dense Hessian of torch.autograd.functional.hessian over the flat ``names``."""
    named = dict(model.named_parameters())
    shapes = [named[n].shape for n in names]
    flat0 = torch.cat([named[n].detach().reshape(-1) for n in names])

    def f(flat: Tensor) -> Tensor:
        chunks = flat.split([s.numel() for s in shapes])
        pieces = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        merged = {n: pieces.get(n, p.detach()) for n, p in named.items()}
        out = functional_call(model, merged, (x,))
        return F.cross_entropy(out, y) + 0.01 * sum((p**2).sum() for p in merged.values())

    g = torch.autograd.functional.jacobian(f, flat0)
    h = torch.autograd.functional.hessian(f, flat0)
    return float(g @ h @ g), float(g @ g)


@pytest.mark.parametrize("subset", [None, ["2.weight", "4.bias"]])
def test_reused_gradient_gives_the_exact_curvature_and_the_same_grad(subset):
    model = small_net()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 3, (16,))
    named = dict(model.named_parameters())
    params = None if subset is None else [named[n] for n in subset]
    monitor = IllConditioningMonitor(model, lr_fn=lambda: 0.5, every=1, params=params)
    objective(model, x, y).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)

    assert monitor.backward(1, objective(model, x, y)) is True
    for p, e in zip(model.parameters(), expected, strict=True):  # every parameter, bit for bit, no graph
        assert torch.equal(p.grad, e) and p.grad.grad_fn is None and not p.grad.requires_grad
    monitor.after_step(1, torch.tensor(0.0))
    row = monitor.history[0]
    ghg, gg = exact_ghg(model, subset or list(named), x, y)
    assert row["gg"] == pytest.approx(gg, rel=1e-12)
    assert row["gHg"] == pytest.approx(ghg, rel=1e-10)
    assert row["stable_lr"] == pytest.approx(2 * gg / ghg, rel=1e-10)
    assert row["criterion"] == pytest.approx(0.5 * 0.25 * ghg - 0.5 * gg, rel=1e-10, abs=1e-12)


def test_backward_accumulates_like_loss_backward_and_skips_other_steps():
    model = small_net()
    model[0].bias.requires_grad_(False)
    unused = nn.Parameter(torch.ones(2, dtype=torch.float64))
    model.register_parameter("unused", unused)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    seeded = {id(p): torch.randn(p.shape, dtype=p.dtype) for p in model.parameters()}

    def start() -> None:
        for p in model.parameters():
            p.grad = seeded[id(p)].clone() if p is not model[2].weight and p.requires_grad else None

    start()
    objective(model, x, y).backward()
    expected = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    start()
    monitor = IllConditioningMonitor(model, lr_fn=lambda: 0.1, every=3)
    loss = objective(model, x, y)
    assert monitor.backward(2, loss) is False and monitor.backward(4, loss) is False  # not check steps
    assert monitor.backward(3, loss) is True
    for p, e in zip(model.parameters(), expected, strict=True):
        assert (p.grad is None and e is None) or torch.equal(p.grad, e)
    assert model[0].bias.grad is None and unused.grad is not None  # frozen: untouched; unused: as it was


def test_probe_batch_mode_is_never_asked_for_the_backward():
    model = small_net()
    batch = (torch.randn(4, 3, dtype=torch.float64), torch.randint(0, 3, (4,)))
    probe = IllConditioningMonitor(model, F.cross_entropy, batch, lambda: 0.1, every=1)
    assert probe.uses_probe and probe.backward(1, objective(model, *batch)) is False
    with pytest.raises(ValueError, match="a probe batch needs loss_fn"):
        IllConditioningMonitor(model, None, batch, lambda: 0.1)
    with pytest.raises(TypeError, match="needs lr_fn"):
        IllConditioningMonitor(model)


def test_a_loop_that_does_not_route_the_backward_gets_a_clear_error():
    model = small_net()
    monitor = IllConditioningMonitor(model, lr_fn=lambda: 0.1, every=2)
    monitor.after_step(1, torch.tensor(1.0))
    with pytest.raises(RuntimeError, match=r"no gradient of step 2: .*monitor\.backward\(step, loss\)"):
        monitor.after_step(2, torch.tensor(1.0))


def thirty_x_squared_run(lr: float, steps: int, monitor: IllConditioningMonitor | None, model: nn.Module, start=1):
    """The chapter's f(w) = 30 w^2 by SGD, the backward routed through the monitor."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(start, start + steps):
        opt.zero_grad()
        loss = 30 * (model(torch.ones(1, 1, dtype=torch.float64)) ** 2).sum()
        if monitor is None or not monitor.backward(step, loss):
            loss.backward()
        opt.step()
        if monitor is not None:
            monitor.after_step(step, loss.detach())


def linear_at(w: float) -> nn.Module:
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(w)
    return model


def test_alarm_on_the_seeds_example_above_one_thirtieth_only():
    model = linear_at(3.0)
    monitor = IllConditioningMonitor(model, lr_fn=lambda: 0.034, every=10, patience=3)
    with pytest.warns(IllConditioningWarning, match="step 30: .* stable learning rate here ~0.033"):
        thirty_x_squared_run(0.034, 100, monitor, model)
    assert len(monitor.alarms) == 1 and [r["step"] for r in monitor.history] == [10.0 * i for i in range(1, 11)]
    assert all(r["curvature"] == pytest.approx(60.0) and r["criterion"] > 0 for r in monitor.history)
    # the row's loss is the mean of the 10 training losses of its window
    losses = [30 * (3.0 * (1 - 60 * 0.034) ** k) ** 2 for k in range(10)]
    assert monitor.history[0]["loss"] == pytest.approx(sum(losses) / 10, rel=1e-12)

    model = linear_at(3.0)
    quiet = IllConditioningMonitor(model, lr_fn=lambda: 0.033, every=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllConditioningWarning)
        thirty_x_squared_run(0.033, 100, quiet, model)
    assert quiet.alarms == [] and all(r["criterion"] < 0 for r in quiet.history)


def test_state_dict_round_trip_mid_window_continues_identically():
    model = linear_at(3.0)
    whole = IllConditioningMonitor(model, lr_fn=lambda: 0.034)
    with pytest.warns(IllConditioningWarning):
        thirty_x_squared_run(0.034, 60, whole, model)
    model = linear_at(3.0)
    first = IllConditioningMonitor(model, lr_fn=lambda: 0.034)
    thirty_x_squared_run(0.034, 25, first, model)
    resumed = IllConditioningMonitor(model, lr_fn=lambda: 0.034)
    resumed.load_state_dict(first.state_dict())
    with pytest.warns(IllConditioningWarning):
        thirty_x_squared_run(0.034, 35, resumed, model, start=26)
    assert resumed.state_dict() == whole.state_dict() and len(whole.history) == 6


class Net(nn.Module):
    """Dropout and batch norm: the RNG and the buffers must be those of training without the monitor."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.3), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@pytest.mark.parametrize("probe", [False, True])
def test_trainer_with_the_monitor_ends_bit_identical(probe):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 6, generator=gen), torch.randint(0, 3, (200,), generator=gen)
    data = Dataset("toy", "classification", x, y, x[:50], y[:50], x[:50], y[:50], num_classes=3)

    def run(watch: bool) -> tuple[Trainer, IllConditioningMonitor | None, Tensor]:
        torch.manual_seed(1)
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        monitors = []
        if watch:
            batch = (x[:32], y[:32]) if probe else None
            monitors = [IllConditioningMonitor(model, F.cross_entropy, batch, lambda: 0.1, every=5)]
        trainer = Trainer(
            model,
            opt,
            data,
            epochs=2,
            batch_size=20,
            penalties=[lambda m: 1e-3 * sum((p**2).sum() for p in m.parameters())],
            grad_transforms=[lambda m: torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)],
            monitors=monitors,
        )
        trainer.fit()
        return trainer, monitors[0] if monitors else None, torch.get_rng_state()

    plain, _, plain_rng = run(False)
    watched, monitor, watched_rng = run(True)
    assert monitor is not None and [r["step"] for r in monitor.history] == [5.0 * i for i in range(1, 5)]
    assert all(r["gHg"] != 0 and r["gg"] > 0 for r in monitor.history)
    for a, b in zip(plain.model.state_dict().values(), watched.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(plain.optimizer.state.values(), watched.optimizer.state.values(), strict=True):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert [r["val_loss"] for r in plain.history] == [r["val_loss"] for r in watched.history]
    assert torch.equal(plain_rng, watched_rng)  # both runs drew the same random numbers


@pytest.mark.parametrize("probe_size", [None, 64])
def test_lab_config_checks_the_step_taken_or_a_probe_batch_and_leaves_training_unchanged(probe_size):
    from regopt.lab.config import validate
    from regopt.lab.experiment import build_experiment
    from tests.conftest import small_raw

    section = {"every": 5} if probe_size is None else {"every": 5, "probe_size": probe_size}
    plain = build_experiment(validate(small_raw()))
    plain.trainer.fit()
    watched = build_experiment(validate(small_raw(diagnostics={"ill_conditioning": section})))
    monitor = next(m for m in watched.trainer.monitors if isinstance(m, IllConditioningMonitor))
    assert (monitor.x is None) == (probe_size is None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllConditioningWarning)
        watched.trainer.fit()
    steps = watched.trainer.step
    assert [row["step"] for row in monitor.history] == list(range(5, steps + 1, 5))
    assert all(type(row["step"]) is int for row in monitor.history)  # ill_conditioning.csv writes 5, not 5.0
    assert all(row["gg"] > 0 and row["stable_lr"] > 0 for row in monitor.history)
    for p, q in zip(plain.model.parameters(), watched.model.parameters(), strict=True):
        assert torch.equal(p, q)
