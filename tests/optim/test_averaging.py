"""PolyakAveraging: scripted trajectories against hand-computed means, exact swap/restore, BN recalibration."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from regopt.optim.averaging import PolyakAveraging


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2).double()


def _trajectory(model: nn.Module, steps: int, seed: int = 1) -> list[list[torch.Tensor]]:
    """Scripted parameter values: one list of tensors (in parameter order) per step."""
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=g, dtype=p.dtype) for p in model.parameters()] for _ in range(steps)]


def _feed(avg: PolyakAveraging, model: nn.Module, trajectory: list[list[torch.Tensor]]) -> None:
    for values in trajectory:
        with torch.no_grad():
            for p, v in zip(model.parameters(), values, strict=True):
                p.copy_(v)
        avg.update()


def _averaged_values(avg: PolyakAveraging, model: nn.Module) -> list[torch.Tensor]:
    with avg.averaged():
        return [p.detach().clone() for p in model.parameters()]


def test_arithmetic_mean_matches_hand_computation():
    model = _linear()
    avg = PolyakAveraging(model)
    trajectory = _trajectory(model, 7)
    _feed(avg, model, trajectory)
    expected = [sum(step[i] for step in trajectory) / len(trajectory) for i in range(2)]
    for got, want in zip(_averaged_values(avg, model), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert avg.num_averaged == 7


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9])
def test_ema_matches_hand_computation(decay):
    model = _linear()
    avg = PolyakAveraging(model, decay=decay)
    trajectory = _trajectory(model, 6)
    _feed(avg, model, trajectory)
    expected = [t.clone() for t in trajectory[0]]  # theta_bar_1 = theta_1
    for step in trajectory[1:]:
        expected = [decay * e + (1 - decay) * v for e, v in zip(expected, step, strict=True)]
    for got, want in zip(_averaged_values(avg, model), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_averaged_swaps_in_and_restores_exactly():
    model = _linear()
    avg = PolyakAveraging(model, decay=0.7)
    _feed(avg, model, _trajectory(model, 4))
    live = [p.detach().clone() for p in model.parameters()]
    with avg.averaged() as m:
        assert m is model
        assert not torch.equal(model.weight, live[0])
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), live, strict=True))
    with pytest.raises(RuntimeError, match="boom"), avg.evaluation_view():
        raise RuntimeError("boom")
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), live, strict=True))


def test_start_step_skips_first_updates():
    model = _linear()
    avg = PolyakAveraging(model, start_step=3)
    trajectory = _trajectory(model, 8)
    _feed(avg, model, trajectory[:3])
    assert avg.num_averaged == 0
    with avg.averaged():  # nothing averaged yet: the view is the model itself
        assert torch.equal(model.weight, trajectory[2][0])
    with pytest.raises(RuntimeError, match="no iterate"):
        avg.copy_to(model)
    _feed(avg, model, trajectory[3:])
    assert avg.num_averaged == 5
    expected = sum(step[0] for step in trajectory[3:]) / 5
    torch.testing.assert_close(_averaged_values(avg, model)[0], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("decay", [None, 0.8])
def test_state_dict_round_trip_continues_identically(decay):
    model = _linear()
    avg = PolyakAveraging(model, decay=decay, start_step=1)
    trajectory = _trajectory(model, 9)
    _feed(avg, model, trajectory[:4])
    buffer = io.BytesIO()
    torch.save(avg.state_dict(), buffer)
    buffer.seek(0)
    model2 = copy.deepcopy(model)
    fresh = PolyakAveraging(model2)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    _feed(avg, model, trajectory[4:])
    _feed(fresh, model2, trajectory[4:])
    assert fresh.num_averaged == avg.num_averaged == 8
    for a, b in zip(_averaged_values(avg, model), _averaged_values(fresh, model2), strict=True):
        assert torch.equal(a, b)


def test_call_is_update_and_copy_to_is_permanent():
    model = _linear()
    avg = PolyakAveraging(model)
    trajectory = _trajectory(model, 3)
    for values in trajectory:
        with torch.no_grad():
            for p, v in zip(model.parameters(), values, strict=True):
                p.copy_(v)
        avg(model)  # the Trainer's post_step call
    mean = _averaged_values(avg, model)
    target = copy.deepcopy(model)
    avg.copy_to(target)
    assert all(torch.equal(p, q) for p, q in zip(target.parameters(), mean, strict=True))
    assert torch.equal(model.weight, trajectory[-1][0])  # the tracked model is untouched by copy_to(other)


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_update_bn_recomputes_stats_for_the_averaged_weights():
    model = _bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    avg = PolyakAveraging(model)
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(32, 4, generator=g) * 2 + 1 for _ in range(6)]
    for x in batches * 3:
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        avg.update()
    own_buffers = {k: v.clone() for k, v in model.named_buffers()}

    avg.update_bn(batches)
    assert all(torch.equal(v, own_buffers[k]) for k, v in model.named_buffers())

    # Reference: a copy of the model holding the averages, recalibrated by torch's update_bn directly.
    reference = copy.deepcopy(model)
    averages = dict(zip(avg.state_dict()["names"], avg.state_dict()["averages"], strict=True))
    with torch.no_grad():
        for name, p in reference.named_parameters():
            p.copy_(averages[name])
    update_bn(batches, reference)

    model.eval()
    reference.eval()
    x = torch.randn(10, 4, generator=g)
    with torch.no_grad(), avg.evaluation_view():
        for (name, b), (_, rb) in zip(model.named_buffers(), reference.named_buffers(), strict=True):
            assert torch.equal(b, rb), name
        out = model(x)
    torch.testing.assert_close(out, reference(x), atol=1e-6, rtol=0)
    assert not torch.equal(own_buffers["1.running_mean"], reference[1].running_mean)  # the test means something
    assert all(torch.equal(v, own_buffers[k]) for k, v in model.named_buffers())


class _Quadratic(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.full((dim,), 3.0, dtype=torch.float64))


@pytest.mark.parametrize(("decay", "margin"), [(None, 0.3), (0.99, 0.6)])
def test_average_of_noisy_sgd_is_closer_to_the_minimum(decay, margin):
    # f(theta) = 0.5 * sum(a_i theta_i^2), minimum at 0; gradients with N(0, 1) noise.
    model = _Quadratic(20)
    a = torch.linspace(0.5, 2.0, 20, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    avg = PolyakAveraging(model, decay=decay, start_step=200)
    g = torch.Generator().manual_seed(0)
    for _ in range(3000):
        model.theta.grad = a * model.theta.detach() + torch.randn(20, generator=g, dtype=torch.float64)
        opt.step()
        avg.update()
    last = model.theta.detach().norm()
    with avg.averaged():
        averaged = model.theta.detach().norm()
    assert averaged < margin * last


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"decay": 1.5}, r"decay must be in \[0, 1\) or None, got 1\.5"),
        ({"decay": 1.0}, r"decay .* got 1\.0"),
        ({"decay": -0.1}, r"decay .* got -0\.1"),
        ({"decay": "0.9"}, r"decay .* got '0\.9'"),
        ({"decay": float("nan")}, r"decay .* got nan"),
        ({"start_step": -1}, r"start_step must be a non-negative integer, got -1"),
        ({"start_step": 2.5}, r"start_step .* got 2\.5"),
    ],
)
def test_bad_arguments_raise(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        PolyakAveraging(_linear(), **kwargs)


def test_model_without_float_parameters_raises():
    with pytest.raises(ValueError, match="no floating-point parameters"):
        PolyakAveraging(nn.ReLU())
    with pytest.raises(TypeError, match=r"model must be an nn\.Module"):
        PolyakAveraging([torch.zeros(2)])  # type: ignore[arg-type]
