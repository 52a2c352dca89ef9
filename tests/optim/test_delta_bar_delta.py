"""Trap 14.2.15: delta-bar-delta's per-weight rates are bounded by ``max_rate``; the rule with the bound, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from regopt.optim import SGD, DeltaBarDelta
from regopt.optim.delta_bar_delta import RATE_BOUND


def _step(optimizer: torch.optim.Optimizer, p: torch.nn.Parameter, g: list[float]) -> None:
    p.grad = torch.tensor(g, dtype=p.dtype)
    optimizer.step()


@pytest.mark.parametrize("bad", [0.05, -1.0, 0.0, math.nan])
def test_max_rate_below_the_initial_rate_is_refused(bad):
    with pytest.raises(ValueError, match=r"^Invalid max_rate: .*must be >= lr \(0.1\)"):
        DeltaBarDelta([torch.nn.Parameter(torch.zeros(2))], lr=0.1, max_rate=bad)


def test_the_default_bound_is_a_multiple_of_each_groups_initial_rate():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = DeltaBarDelta([{"params": [a]}, {"params": [b], "lr": 2.0}], lr=0.1, kappa=1.0)
    for _ in range(10):
        a.grad, b.grad = torch.ones(2), torch.ones(2)
        optimizer.step()
    assert optimizer.state[a]["rate"].tolist() == pytest.approx([0.1 * RATE_BOUND] * 2)
    assert optimizer.state[b]["rate"].tolist() == pytest.approx([2.0 * RATE_BOUND] * 2)


def test_same_sign_gradients_grow_the_rates_additively_up_to_max_rate_and_no_further():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = DeltaBarDelta([p], lr=0.1, kappa=0.03, phi=0.1, theta=0.7, max_rate=0.25)
    seen = []
    for k in range(20):  # Jacobs' additive increase: every gradient has the sign of the running average
        _step(optimizer, p, [1.0 + k, 0.5, 3.0])
        seen.append(optimizer.state[p]["rate"].clone())
    rates = torch.stack(seen)
    assert rates.max() <= 0.25
    # step 1 has no average yet (no change); steps 2-6 add kappa each (0.1 -> 0.25), then the bound holds them
    expected = [min(0.1 + 0.03 * max(0, k - 1), 0.25) for k in range(1, 21)]
    torch.testing.assert_close(rates[:, 0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.equal(rates[:, 0], rates[:, 2])

    unbounded = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = DeltaBarDelta([unbounded], lr=0.1, kappa=0.03, phi=0.1, theta=0.7, max_rate=math.inf)
    for k in range(20):
        _step(optimizer, unbounded, [1.0 + k, 0.5, 3.0])
    assert optimizer.state[unbounded]["rate"].min() > 0.6  # Jacobs' rule alone: 0.1 + 19 * 0.03


def test_three_steps_worked_by_hand_in_float64():
    """lr 0.1, kappa 0.04, phi 0.5, theta 0.5, max_rate 0.15; weights start at 1.

    step 1, g = [2, -1, 0.5]: no average yet, rates stay 0.1; w = [0.8, 1.1, 0.95]; bar = [1, -0.5, 0.25]
    step 2, g = [1, 2, 0]: bar*g = [1, -1, 0] -> rates [0.14, 0.05, 0.1]; w = [0.66, 1.0, 0.95];
            bar = [1, 0.75, 0.125]
    step 3, g = [1, 1, -1]: bar*g = [1, 0.75, -0.125] -> rates [min(0.18, 0.15), 0.09, 0.05];
            w = [0.51, 0.91, 1.0]
    """
    p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = DeltaBarDelta([p], lr=0.1, kappa=0.04, phi=0.5, theta=0.5, max_rate=0.15)
    for g in ([2.0, -1.0, 0.5], [1.0, 2.0, 0.0], [1.0, 1.0, -1.0]):
        _step(optimizer, p, g)
    f64 = {"dtype": torch.float64}
    torch.testing.assert_close(p.detach(), torch.tensor([0.51, 0.91, 1.0], **f64), rtol=0, atol=1e-15)
    torch.testing.assert_close(optimizer.state[p]["rate"], torch.tensor([0.15, 0.09, 0.05], **f64), rtol=0, atol=1e-15)
    torch.testing.assert_close(optimizer.state[p]["bar"], torch.tensor([1.0, 0.875, -0.4375], **f64), rtol=0, atol=0)


def test_without_adaptation_it_is_sgd_with_the_default_bound():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    b.load_state_dict(a.state_dict())
    dbd = DeltaBarDelta(a.parameters(), kappa=0.0, phi=0.0)  # default lr and max_rate
    sgd = SGD(b.parameters(), lr=dbd.defaults["lr"])
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        x = torch.randn(16, 4, generator=gen, dtype=torch.float64)
        for model, optimizer in ((a, dbd), (b, sgd)):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)  # float64 rounding of lr * g vs an axpy, 10 steps
