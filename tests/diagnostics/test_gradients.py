"""Gradient norms, the spike monitor on scripted norm sequences, and the clipping transforms."""

from __future__ import annotations

import io
import logging
import math

import pytest
import torch
from torch import nn

from regopt.diagnostics.alarms import LOGGER_NAME
from regopt.diagnostics.clipping import clip_by_norm, clip_by_value
from regopt.diagnostics.gradients import GradientMonitor, GradientSpike, gradient_norms
from regopt.monitor import Monitor


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def backward(model: nn.Module) -> None:
    model.zero_grad(set_to_none=True)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    model(x).pow(2).sum().backward()


def set_grad_norm(model: nn.Module, norm: float) -> None:
    """Give every parameter a constant gradient so that the global norm is ``norm``."""
    params = list(model.parameters())
    size = sum(p.numel() for p in params)
    for p in params:
        p.grad = torch.full_like(p, norm / math.sqrt(size))


def drive(monitor: GradientMonitor, model: nn.Module, norms: list[float], first_step: int = 1) -> None:
    for step, norm in enumerate(norms, start=first_step):
        set_grad_norm(model, norm)
        monitor.after_step(step, torch.tensor(0.0))


# ------------------------------------------------------------------------------------------ gradient_norms
def test_gradient_norms_match_hand_computation():
    model = mlp()
    backward(model)
    total, layers = gradient_norms(model)
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert total == pytest.approx(torch.cat([g.flatten() for g in grads.values()]).norm().item(), rel=1e-6)
    assert list(layers) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, g in grads.items():
        assert layers[name] == pytest.approx(g.norm().item(), rel=1e-6)


def test_gradient_norms_by_module_and_missing_grads():
    model = mlp()
    backward(model)
    model[0].bias.grad = None  # left out, not counted as zero
    total, modules = gradient_norms(model, by="module")
    assert list(modules) == ["0", "2"]
    assert modules["0"] == pytest.approx(model[0].weight.grad.norm().item(), rel=1e-6)
    expected_2 = torch.cat([model[2].weight.grad.flatten(), model[2].bias.grad]).norm().item()
    assert modules["2"] == pytest.approx(expected_2, rel=1e-6)
    assert total == pytest.approx(math.hypot(modules["0"], modules["2"]), rel=1e-6)
    assert gradient_norms(nn.Linear(2, 2)) == (0.0, {})


def test_gradient_norms_low_precision_does_not_overflow():
    p = nn.Parameter(torch.zeros(4, dtype=torch.float16))
    model = nn.Module()
    model.p = p
    p.grad = torch.full((4,), 60000.0, dtype=torch.float16)  # each finite; the norm 120000 exceeds float16
    total, _ = gradient_norms(model)
    assert total == pytest.approx(120000.0, rel=1e-3)


# ------------------------------------------------------------------------------------------ GradientMonitor
def test_one_spike_in_scripted_norms():
    model = mlp()
    monitor = GradientMonitor(model, window=50)
    assert isinstance(monitor, Monitor)
    drive(monitor, model, [1, 1.1, 0.9, 1, 1, 50, 1])
    assert len(monitor.spikes) == 1
    spike = monitor.spikes[0]
    assert isinstance(spike, GradientSpike)
    assert spike.step == 6
    assert spike.norm == pytest.approx(50, rel=1e-5)
    assert spike.median == pytest.approx(1.0, rel=1e-5)
    assert spike.ratio == pytest.approx(50, rel=1e-5)
    assert [s for s, _ in monitor.history] == [1, 2, 3, 4, 5, 6, 7]
    assert [n for _, n in monitor.history] == pytest.approx([1, 1.1, 0.9, 1, 1, 50, 1], rel=1e-5)
    (message,) = monitor.messages
    assert message.startswith("gradient spike at step 6: norm 50 is 50x the running median 1 ")
    assert "clip" in message
    assert monitor.after_epoch(1, {}) == (False, "")


@pytest.mark.parametrize(
    "norms",
    [
        [1.05**k for k in range(300)],  # smooth exponential growth
        [1.0 + k for k in range(300)],  # linear growth
        [1.0, 1.1, 0.9, 1.0, 1.0, 9.0, 1.0],  # below the factor
    ],
)
def test_no_spike(norms):
    model = mlp()
    monitor = GradientMonitor(model, window=50)
    drive(monitor, model, norms)
    assert monitor.spikes == []


def test_too_few_samples_are_not_judged_and_nonfinite_is_always_a_spike():
    model = mlp()
    monitor = GradientMonitor(model, window=50, min_samples=5)
    drive(monitor, model, [1, 1, 1, 1, 100])  # only 4 samples before the 100
    assert monitor.spikes == []
    drive(monitor, model, [math.inf], first_step=6)
    assert [s.step for s in monitor.spikes] == [6]
    assert "non-finite" in monitor.messages[0]


def test_every_and_per_layer():
    model = mlp()
    monitor = GradientMonitor(model, every=3, per_layer=True)
    drive(monitor, model, [1.0] * 10)
    assert [h[0] for h in monitor.history] == [3, 6, 9]
    _, norm, layers = monitor.history[0]
    assert list(layers) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert math.sqrt(sum(v * v for v in layers.values())) == pytest.approx(norm, rel=1e-6)


def test_no_gradient_is_a_clear_error():
    monitor = GradientMonitor(mlp())
    with pytest.raises(RuntimeError, match="no gradient"):
        monitor.after_step(1, torch.tensor(0.0))


@pytest.mark.parametrize("per_layer", [False, True])
def test_state_dict_round_trip_continues_identically(per_layer):
    norms = [1, 1.1, 0.9, 1, 1, 50, 1, 1.2, 0.8, 30, 1, 1, 2, 1, 80, 1]
    model = mlp()
    straight = GradientMonitor(model, window=6, per_layer=per_layer)
    drive(straight, model, norms)

    first = GradientMonitor(model, window=6, per_layer=per_layer)
    drive(first, model, norms[:8])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = GradientMonitor(model, window=6, per_layer=per_layer)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    drive(resumed, model, norms[8:], first_step=9)

    assert [s.step for s in straight.spikes] == [6, 10, 15]
    assert resumed.spikes == straight.spikes
    assert resumed.history == straight.history
    assert resumed.messages == straight.messages


def test_load_state_dict_rejects_other_settings():
    model = mlp()
    state = GradientMonitor(model, window=6).state_dict()
    with pytest.raises(ValueError, match="window"):
        GradientMonitor(model, window=7).load_state_dict(state)


# ------------------------------------------------------------------------------------------ clipping
def test_clip_by_norm_is_torchs_clip_grad_norm():
    model = mlp()
    backward(model)
    before, _ = gradient_norms(model)
    expected = [p.grad * min(1.0, 0.5 / before) for p in model.parameters()]
    total = clip_by_norm(0.5)(model)
    assert float(total) == pytest.approx(before, rel=1e-6)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e)
    assert gradient_norms(model)[0] == pytest.approx(0.5, rel=1e-5)


def test_clip_by_value_clamps_each_element():
    model = mlp()
    backward(model)
    expected = [p.grad.clamp(-0.01, 0.01) for p in model.parameters()]
    assert clip_by_value(0.01)(model) is None
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e)


# ------------------------------------------------------------------------------------------ bad arguments
BAD = [
    (lambda: GradientMonitor(mlp(), every=0), "every"),
    (lambda: GradientMonitor(mlp(), every=True), "every"),
    (lambda: GradientMonitor(mlp(), window=0), "window"),
    (lambda: GradientMonitor(mlp(), spike_factor=1.0), "spike_factor"),
    (lambda: GradientMonitor(mlp(), spike_factor=math.nan), "spike_factor"),
    (lambda: GradientMonitor(mlp(), per_layer="yes"), "per_layer"),
    (lambda: GradientMonitor(mlp(), window=3, min_samples=4), "min_samples"),
    (lambda: GradientMonitor(mlp(), min_samples=0), "min_samples"),
    (lambda: gradient_norms(mlp(), by="layer"), "by"),
    (lambda: clip_by_norm(0.0), "max_norm"),
    (lambda: clip_by_norm(math.inf), "max_norm"),
    (lambda: clip_by_norm(1.0, norm_type=-1), "norm_type"),
    (lambda: clip_by_value(-1.0), "value"),
]


@pytest.mark.parametrize(("make", "name"), BAD)
def test_bad_arguments_name_the_argument(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make()


# ------------------------------------------------------------------------------------------ raw vs clipped
def clip_to(model: nn.Module, max_norm: float) -> None:
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, foreach=True)


def test_spike_is_judged_on_the_raw_norm_and_the_clipped_norm_is_recorded_beside_it(caplog):
    """Issue 14, defect 3.1: with clipping to 1, a spike of norm 44,130 at step 12 was recorded as 1.0 and missed."""
    model = mlp()
    monitor = GradientMonitor(model, window=50)
    norms = [1.0 + 0.1 * (k % 3) for k in range(1, 21)]
    norms[11] = 44130.0  # step 12
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        for step, norm in enumerate(norms, start=1):
            set_grad_norm(model, norm)
            monitor.after_backward(step)  # the raw gradient, before the loop's gradient transforms
            clip_to(model, 1.0)
            monitor.after_step(step, torch.tensor(0.0))
    assert [(s.step, round(s.norm)) for s in monitor.spikes] == [(12, 44130)]
    assert [n for _, n in monitor.history] == pytest.approx(norms, rel=1e-5)
    assert monitor.clipped_norms == pytest.approx([min(n, 1.0) for n in norms], rel=1e-5)
    (message,) = monitor.messages
    assert message.startswith("gradient spike at step 12: norm 4.413e+04 is ")
    assert "clipped to norm 1" in message
    (record,) = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert record.levelno == logging.WARNING and record.getMessage() == message


def test_without_gradient_transforms_the_clipped_norm_is_the_raw_one():
    model = mlp()
    monitor = GradientMonitor(model, window=50)
    for step, norm in enumerate([1.0, 2.0, 3.0], start=1):
        set_grad_norm(model, norm)
        monitor.after_backward(step)
        monitor.after_step(step, torch.tensor(0.0))
    drive(monitor, model, [4.0], first_step=4)  # a loop that does not call after_backward
    assert monitor.clipped_norms == [n for _, n in monitor.history]
    assert monitor.clipped_norms == pytest.approx([1.0, 2.0, 3.0, 4.0], rel=1e-6)


def test_per_layer_norms_are_raw_too():
    model = mlp()
    monitor = GradientMonitor(model, per_layer=True)
    set_grad_norm(model, 8.0)
    monitor.after_backward(1)
    clip_to(model, 1.0)
    monitor.after_step(1, torch.tensor(0.0))
    ((step, norm, layers),) = monitor.history
    assert (step, monitor.clipped_norms) == (1, pytest.approx([1.0]))
    assert norm == pytest.approx(8.0) and math.hypot(*layers.values()) == pytest.approx(8.0)
