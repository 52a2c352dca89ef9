"""The chapter's ill-conditioning criterion on f(x) = 30 x^2 and quadratics, and the monitor on scripted runs."""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from regopt.diagnostics.conditioning import IllConditioningMonitor, IllConditioningWarning, step_curvature
from regopt.diagnostics.hessian_operator import HessianOperator


def thirty_x_squared(x0: float) -> tuple[nn.Module, tuple[Tensor, Tensor], object]:
    """The chapter's f(x) = 30 x^2 as a one-parameter model: output = w * 1, loss = 30 * output^2."""
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(x0)
    batch = (torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    return model, batch, lambda out, y: 30 * (out**2).sum()


@pytest.mark.parametrize("x0", [3.0, 4.0, 50.0])
def test_thirty_x_squared_matches_the_seed(x0):
    model, (x, y), loss = thirty_x_squared(x0)
    op = HessianOperator(model, loss, x, y)
    g = op.gradient()
    hg = op.matvec(g)
    assert g.item() == 60 * x0 and hg.item() == 60 * 60 * x0  # f'(x) = 60x, f''(x) = 60
    row = step_curvature(g, hg, lr=0.033)
    assert row["curvature"] == 60.0
    assert row["stable_lr"] == pytest.approx(1 / 30, rel=1e-15)
    assert row["gg"] == (60 * x0) ** 2 and row["gHg"] == 60 * (60 * x0) ** 2
    assert row["criterion"] < 0  # 0.033 < 1/30: no ill-conditioning, whatever x
    assert step_curvature(g, hg, lr=0.034)["criterion"] > 0  # 0.034 > 1/30: ill-conditioning, whatever x
    assert step_curvature(g, hg, lr=0.035)["criterion"] > 0
    for lr in (0.01, 0.033, 0.034, 0.035, 0.1):  # 3600 x^2 eps (30 eps - 1)
        expected = 3600 * x0**2 * lr * (30 * lr - 1)
        assert step_curvature(g, hg, lr)["criterion"] == pytest.approx(expected, rel=1e-12)
    assert abs(step_curvature(g, hg, lr=1 / 30)["criterion"]) < 1e-9 * x0**2  # the border


def test_curvature_of_a_quadratic_by_hand():
    torch.manual_seed(1)
    a = torch.randn(6, 6, dtype=torch.float64)
    h = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    theta = torch.randn(6, dtype=torch.float64)
    g = h @ theta - b  # gradient of 0.5 theta'H theta - b'theta
    row = step_curvature(g, h @ g, lr=0.05)
    ghg, gg = float(g @ h @ g), float(g @ g)
    # rel 1e-14: (g'H)g and g'(Hg) are dot products of 6 terms, whose rounding is bounded by ~2 n eps |g|'|H||g| /
    # g'Hg = 4e-15 relative here (equal bits on this CPU); the criterion's two terms cancel by a factor ~1.4 only
    assert row["gHg"] == pytest.approx(ghg, rel=1e-14) and row["gg"] == pytest.approx(gg, rel=1e-14)
    assert row["curvature"] == pytest.approx(ghg / gg, rel=1e-14)
    assert row["stable_lr"] == pytest.approx(2 * gg / ghg, rel=1e-14)
    assert row["criterion"] == pytest.approx(0.5 * 0.05**2 * ghg - 0.05 * gg, rel=1e-12)
    eig = torch.linalg.eigvalsh(h)
    assert eig[0] <= row["curvature"] <= eig[-1]  # a Rayleigh quotient


def test_limits_and_bad_arguments():
    g = torch.tensor([1.0, -2.0])
    negative = step_curvature(g, -g, lr=0.1)  # g'Hg < 0: any step lowers the loss to second order
    assert negative["stable_lr"] == math.inf and negative["criterion"] < 0
    zero = step_curvature(torch.zeros(2), torch.zeros(2), lr=0.1)
    assert math.isnan(zero["curvature"]) and zero["criterion"] == 0 and zero["stable_lr"] == math.inf
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        step_curvature(g, torch.zeros(3), lr=0.1)
    with pytest.raises(ValueError, match=r"lr must be >= 0, got -0\.1"):
        step_curvature(g, g, lr=-0.1)
    model, batch, loss = thirty_x_squared(3.0)
    for kwargs, message in [({"every": 0}, "every must be >= 1"), ({"patience": 0}, "patience must be >= 1")]:
        with pytest.raises(ValueError, match=message):
            IllConditioningMonitor(model, loss, batch, lambda: 0.1, **kwargs)
    with pytest.raises(ValueError, match="loss_tol must be >= 0"):
        IllConditioningMonitor(model, loss, batch, lambda: 0.1, loss_tol=-1.0)


def train(model, batch, loss_fn, lr, steps, monitor=None, start=1):
    """Plain SGD on the probe batch, the monitor told of every step."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = batch
    for step in range(start, start + steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if monitor is not None:
            monitor.after_step(step, loss.detach())


ALARM = re.compile(
    r"ill-conditioning at step 30: 0\.5\*eps\^2\*g'Hg - eps\*g'g = \+\d\.\de[+-]\d\d > 0 for 3 checks; "
    r"gradient norm rose \d+\.\dx while the loss changed \+\d+\.\d%; "
    r"largest stable learning rate here ~0\.033 \(current 0\.034\); lower the learning rate below it"
)


def test_monitor_alarms_above_the_stable_rate_and_is_silent_below():
    model, batch, loss = thirty_x_squared(3.0)
    monitor = IllConditioningMonitor(model, loss, batch, lambda: 0.034, every=10, patience=3)
    with pytest.warns(IllConditioningWarning) as caught:
        train(model, batch, loss, 0.034, 100, monitor)
    assert len(monitor.alarms) == 1 and len(caught) == 1  # one alarm per run of positive checks
    assert ALARM.fullmatch(monitor.alarms[0]), monitor.alarms[0]
    assert [r["step"] for r in monitor.history] == [10.0 * i for i in range(1, 11)]
    assert all(r["criterion"] > 0 and r["stable_lr"] == pytest.approx(1 / 30) for r in monitor.history)
    assert monitor.after_epoch(1, {}) == (False, "")  # it warns, it does not stop

    model, batch, loss = thirty_x_squared(3.0)
    quiet = IllConditioningMonitor(model, loss, batch, lambda: 0.033, every=10, patience=3)
    train(model, batch, loss, 0.033, 100, quiet)
    assert quiet.alarms == [] and all(r["criterion"] < 0 for r in quiet.history)
    assert quiet.after_epoch(1, {}) == (False, "")


def test_monitor_on_ill_conditioned_regression():
    """Least squares with feature scales 1 and 10: lambda_max ~ 200, stable lr ~ 0.01."""
    torch.manual_seed(0)
    x = torch.randn(64, 2, dtype=torch.float64) * torch.tensor([1.0, 10.0], dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    lam_max = torch.linalg.eigvalsh(2 * x.T @ x / 64)[-1].item()
    loss = nn.functional.mse_loss
    for factor, alarmed in [(1.05, True), (0.9, False)]:
        model = nn.Linear(2, 1, bias=False).double()
        lr = factor * 2 / lam_max
        monitor = IllConditioningMonitor(model, loss, (x, y), lambda lr=lr: lr, every=5, stop_on_alarm=True)
        with pytest.warns(IllConditioningWarning) if alarmed else _no_warning():
            train(model, (x, y), loss, lr, 200, monitor)
        assert bool(monitor.alarms) is alarmed
        assert monitor.after_epoch(1, {})[0] is alarmed
        if alarmed:
            assert monitor.after_epoch(1, {})[1] == monitor.alarms[0]


@contextlib.contextmanager
def _no_warning() -> Iterator[None]:
    """Fail on any IllConditioningWarning inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllConditioningWarning)
        yield


class CountingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.net(x)


def test_monitor_calls_the_model_only_every_k_steps_and_changes_nothing():
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    loss = nn.functional.cross_entropy

    def run(with_monitor: bool) -> tuple[CountingModel, IllConditioningMonitor]:
        torch.manual_seed(1)
        model = CountingModel()
        monitor = IllConditioningMonitor(model, loss, (x, y), lambda: 0.1, every=10)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(1, 26):
            opt.zero_grad()
            out = loss(model(x), y)
            out.backward()
            opt.step()
            if with_monitor:
                before = model.calls
                monitor.after_step(step, out.detach())
                assert model.calls - before == (1 if step % 10 == 0 else 0)
        return model, monitor

    plain, _ = run(False)
    watched, monitor = run(True)
    assert [r["step"] for r in monitor.history] == [10.0, 20.0]
    # dropout masks, batch-norm statistics and weights are those of the run without the monitor
    for a, b in zip(plain.state_dict().values(), watched.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("split", [20, 40])  # mid-streak, and after the alarm
def test_state_dict_round_trip_continues_identically(split):
    model, batch, loss = thirty_x_squared(3.0)
    whole = IllConditioningMonitor(model, loss, batch, lambda: 0.034)
    with pytest.warns(IllConditioningWarning):
        train(model, batch, loss, 0.034, 80, whole)

    model, batch, loss = thirty_x_squared(3.0)
    first = IllConditioningMonitor(model, loss, batch, lambda: 0.034)
    with pytest.warns(IllConditioningWarning) if split >= 30 else _no_warning():
        train(model, batch, loss, 0.034, split, first)
    resumed = IllConditioningMonitor(model, loss, batch, lambda: 0.034)
    resumed.load_state_dict(first.state_dict())
    with pytest.warns(IllConditioningWarning) if split < 30 else _no_warning():
        train(model, batch, loss, 0.034, 80 - split, resumed, start=split + 1)
    assert resumed.history == whole.history
    assert resumed.alarms == whole.alarms and len(whole.alarms) == 1
    assert resumed.state_dict() == whole.state_dict()
