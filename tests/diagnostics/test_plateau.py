"""PlateauMonitor on scripted loss / gradient sequences and at the saddle of f(x, y) = x^2 - y^2."""

from __future__ import annotations

import io
import logging
import math
import re

import pytest
import torch
from torch import nn

from regopt.diagnostics.alarms import LOGGER_NAME
from regopt.diagnostics.plateau import PlateauEvent, PlateauMonitor
from regopt.monitor import Monitor


def one_param_model() -> nn.Module:
    return nn.Linear(1, 1, bias=False)


def drive(monitor: PlateauMonitor, model: nn.Module, script: list[tuple[float, float]], first_step: int = 1) -> None:
    """Feed ``(loss, grad_norm)`` pairs as steps ``first_step, first_step + 1, ...``."""
    for step, (loss, grad) in enumerate(script, start=first_step):
        model.weight.grad = torch.full((1, 1), grad)
        monitor.after_step(step, torch.tensor(loss))


def descent_plateau_descent() -> list[tuple[float, float]]:
    """Steps 1-50 descend (3.0 to 1.04), 51-150 sit on a plateau (constant loss 1.0, tiny gradient), 151-200
    descend again."""
    before = [(3.0 - 0.04 * s, 1.0) for s in range(50)]
    plateau = [(1.0, 1e-5)] * 100
    after = [(1.0 - 0.02 * s, 1.0) for s in range(1, 51)]
    return before + plateau + after


def test_one_plateau_with_exact_start_and_end():
    model = one_param_model()
    monitor = PlateauMonitor(model, window=20)
    assert isinstance(monitor, Monitor)
    drive(monitor, model, descent_plateau_descent())
    assert len(monitor.events) == 1
    event = monitor.events[0]
    assert isinstance(event, PlateauEvent)
    assert (event.start, event.end) == (51, 150)
    assert (event.start_loss, event.loss, event.min_eigenvalue, event.saddle) == (1.0, 1.0, None, None)
    assert event.grad_norm == pytest.approx(1e-5)
    assert not monitor.in_plateau
    assert monitor.messages == [
        "plateau from step 51 to 150: loss changed 0%, gradient norm 1e-05 "
        "(a saddle point or flat region; check the smallest Hessian eigenvalue)"
    ]
    assert monitor.after_epoch(1, {}) == (False, "")


@pytest.mark.parametrize(
    "script",
    [
        [(math.exp(-0.01 * s), 1e-5) for s in range(300)],  # decreasing loss, tiny gradient
        [(1.0 + 0.01 * (-1) ** s, 1e-5) for s in range(10)],  # shorter than the window
        [(math.nan, 1e-5)] * 100,  # NaN is never flat
    ],
)
def test_no_plateau(script):
    model = one_param_model()
    monitor = PlateauMonitor(model, window=20)
    drive(monitor, model, script)
    assert monitor.events == []


def test_gradient_test_is_opt_in():
    """A constant loss with a gradient norm of 0.1 is a plateau unless ``grad_tol`` asks for a small gradient."""
    model = one_param_model()
    gated = PlateauMonitor(model, window=20, grad_tol=1e-3)
    drive(gated, model, [(1.0, 0.1)] * 300)
    assert gated.events == []
    judged_by_loss = PlateauMonitor(model, window=20)
    drive(judged_by_loss, model, [(1.0, 0.1)] * 300)
    assert [(e.start, e.end) for e in judged_by_loss.events] == [(1, 300)]


def chance_level(steps: int, noise: float, seed: int = 0) -> list[tuple[float, float]]:
    """A 10-class classifier stuck at chance: loss ln(10) ~ 2.3027 plus minibatch noise, gradient norm 0.06."""
    g = torch.Generator().manual_seed(seed)
    losses = 2.3027 + noise * torch.randn(steps, generator=g, dtype=torch.float64)
    return [(loss, 0.06) for loss in losses.tolist()]


@pytest.mark.parametrize("noise", [0.0, 0.002, 0.1])
def test_loss_at_chance_level_is_a_plateau_whatever_the_gradient_norm(noise, caplog):
    """Issue 14, trap 10: the loss sat at 2.3027 with a minibatch gradient norm of 0.06 and nothing fired."""
    model = one_param_model()
    monitor = PlateauMonitor(model)  # defaults: window 100
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        drive(monitor, model, chance_level(600, noise))
    assert [e.start for e in monitor.events] in ([1], [2])  # one plateau from the start, not split by the noise
    assert monitor.events[0].grad_norm == pytest.approx(0.06)
    (record, *_) = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert record.levelno == logging.WARNING
    assert re.match(r"plateau since step \d+: loss 2\.3\d* not improving .* gradient norm ~0\.06", record.getMessage())
    assert "learning rate" in record.getMessage()  # the advice
    first = monitor.alarm_log.alarms[0]
    assert first.shown and monitor.events[0].start <= first.step <= monitor.events[0].end
    assert "still near the first steps' loss" in first.message


@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_slow_steady_descent_is_not_a_plateau(noise):
    """0.5% per 100 steps (loss 2.3 to 2.2 over 1000 steps), gradient norm 0.06: progress, however slow."""
    g = torch.Generator().manual_seed(1)
    losses = 2.3 * (1 - 5e-5 * torch.arange(1000, dtype=torch.float64))
    losses += noise * torch.randn(1000, generator=g, dtype=torch.float64)
    model = one_param_model()
    monitor = PlateauMonitor(model)
    drive(monitor, model, [(loss, 0.06) for loss in losses.tolist()])
    assert monitor.events == []


def test_noise_that_hides_no_trend_is_flat_but_a_trend_above_the_noise_is_not():
    """The same noise (0.05) around a flat loss and around a descent of 0.2 per 100 steps."""
    g = torch.Generator().manual_seed(2)
    noise = 0.05 * torch.randn(500, generator=g, dtype=torch.float64)
    model = one_param_model()
    flat = PlateauMonitor(model)
    drive(flat, model, [(1.5 + e, 0.5) for e in noise.tolist()])
    assert flat.events
    descending = PlateauMonitor(model)
    drive(descending, model, [(1.5 - 0.002 * s + e, 0.5) for s, e in enumerate(noise.tolist())])
    assert descending.events == []


def test_noisy_loss_on_a_plateau_is_flat_by_half_window_means():
    noisy = [(1.0 + 0.005 * (-1) ** s, 1e-4) for s in range(100)]
    model = one_param_model()
    monitor = PlateauMonitor(model, window=20, loss_tol=1e-3)
    drive(monitor, model, noisy)
    assert [(e.start, e.end) for e in monitor.events] == [(1, 100)]
    assert monitor.in_plateau
    assert "(ongoing)" in monitor.messages[0]


@pytest.mark.parametrize(
    ("eigenvalue", "saddle", "verdict"),
    [(-0.5, True, r"\(saddle: lambda_min = -0\.5 < 0; "), (0.3, False, r"\(flat minimum / plateau: lambda_min = 0\.3")],
)
def test_min_eigenvalue_is_evaluated_once_per_plateau(eigenvalue, saddle, verdict):
    calls = []

    def min_eigenvalue() -> float:
        calls.append(1)
        return eigenvalue

    model = one_param_model()
    monitor = PlateauMonitor(model, window=20, min_eigenvalue_fn=min_eigenvalue)
    drive(monitor, model, descent_plateau_descent() * 2)
    assert [(e.start, e.end) for e in monitor.events] == [(51, 150), (251, 350)]
    assert len(calls) == 2
    assert all(e.min_eigenvalue == eigenvalue and e.saddle is saddle for e in monitor.events)
    assert re.search(
        r"^plateau from step 251 to 350: loss changed \d+%, gradient norm 1e-05 " + verdict, monitor.messages[1]
    )


def test_state_dict_round_trip_continues_identically():
    script = descent_plateau_descent() * 2
    model = one_param_model()
    straight = PlateauMonitor(model, window=20, min_eigenvalue_fn=lambda: -0.5)
    drive(straight, model, script)

    first = PlateauMonitor(model, window=20, min_eigenvalue_fn=lambda: -0.5)
    drive(first, model, script[:100])  # stop in the middle of the first plateau
    assert first.in_plateau
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = PlateauMonitor(model, window=20, min_eigenvalue_fn=lambda: -0.5)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    drive(resumed, model, script[100:], first_step=101)

    assert resumed.events == straight.events
    assert resumed.messages == straight.messages
    with pytest.raises(ValueError, match="window"):
        PlateauMonitor(model, window=21).load_state_dict(first.state_dict())


class Saddle(nn.Module):
    """f(x, y) = x^2 - y^2: a saddle point at the origin (Hessian eigenvalues 2 and -2)."""

    def __init__(self, x: float, y: float) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor([x, y], dtype=torch.float64))

    def forward(self) -> torch.Tensor:
        x, y = self.xy
        return x**2 - y**2


def test_gradient_descent_lingers_at_a_saddle_and_the_monitor_says_so():
    model = Saddle(0.0, 1e-6)

    def min_eigenvalue() -> float:
        hessian = torch.autograd.functional.hessian(lambda xy: xy[0] ** 2 - xy[1] ** 2, model.xy.detach())
        return torch.linalg.eigvalsh(hessian).min().item()

    monitor = PlateauMonitor(
        model, window=20, loss_tol=1e-3, loss_atol=1e-4, grad_tol=1e-2, min_eigenvalue_fn=min_eigenvalue
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    ys, losses = [], []
    for step in range(1, 201):
        optimizer.zero_grad(set_to_none=True)
        loss = model()
        loss.backward()
        optimizer.step()
        monitor.after_step(step, loss.detach())
        ys.append(abs(model.xy[1].item()))
        losses.append(loss.item())
    escape = next(step for step, y in enumerate(ys, start=1) if y > 0.5)
    assert len(monitor.events) == 1
    event = monitor.events[0]
    assert event.start == 1
    assert 40 < event.end < escape  # flagged while near the saddle, ended before the escape
    assert ys[event.end - 1] < 0.01
    assert event.saddle and event.min_eigenvalue == pytest.approx(-2.0)
    assert losses[-1] < -1.0  # it did escape: the loss falls without bound along y
    assert re.search(
        r"^plateau from step 1 to \d+: loss changed by \d\.\de-05, gradient norm 0\.0\d+ ", monitor.messages[0]
    )
    assert re.search(r"saddle: lambda_min = -2 < 0", monitor.messages[0])
    zero = PlateauEvent(1, 2, 0.0, 0.0, 1e-9, None)
    assert zero.describe().startswith("plateau from step 1 to 2: loss changed by 0, gradient norm 1e-09 ")


BAD = [
    ({"window": 1}, "window"),
    ({"window": 2.5}, "window"),
    ({"loss_tol": -1.0}, "loss_tol"),
    ({"grad_tol": 0.0}, "grad_tol"),
    ({"grad_tol": math.inf}, "grad_tol"),
    ({"loss_atol": -1e-3}, "loss_atol"),
    ({"min_eigenvalue_fn": -0.5}, "min_eigenvalue_fn"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        PlateauMonitor(one_param_model(), **kwargs)


def test_no_gradient_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no gradient"):
        PlateauMonitor(one_param_model(), window=2).after_step(1, torch.tensor(1.0))
