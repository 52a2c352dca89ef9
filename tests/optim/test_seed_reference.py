"""Every optimizer equals a literal float64 transcription of its pseudo-code over 200 steps, on a quadratic and
on a small MLP, with a constant learning rate and with one that changes every step, up to what rounding explains
on that problem (tests/optim/tolerance.py: 100x the drift a one-ulp difference causes in the transcription)."""

from __future__ import annotations

import math

import pytest
import torch

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, RMSProp
from tests.optim import reference
from tests.optim.problems import mlp, quadratic, train
from tests.optim.tolerance import assert_matches_reference

STEPS = 200
RATES = {
    "constant": lambda base: lambda k: base,
    "changing": lambda base: lambda k: base * (1.0 + 0.5 * math.cos(k / 7.0)),
}

# (id, optimizer factory taking lr, reference taking (theta, grad, lr, steps), base lr)
CASES = [
    ("8.1 sgd", lambda ps, lr: SGD(ps, lr=lr), lambda th, g, lr, n: reference.sgd(th, g, lr, n), 0.1),
    (
        "8.1 sgd + L2",
        lambda ps, lr: SGD(ps, lr=lr, weight_decay=0.05),
        lambda th, g, lr, n: reference.sgd(th, g, lr, n, weight_decay=0.05),
        0.1,
    ),
    (
        "8.2 momentum",
        lambda ps, lr: SGD(ps, lr=lr, momentum=0.9),
        lambda th, g, lr, n: reference.momentum(th, g, lr, n, alpha=0.9),
        0.02,
    ),
    (
        "8.2 momentum + L2",
        lambda ps, lr: SGD(ps, lr=lr, momentum=0.5, weight_decay=0.1),
        lambda th, g, lr, n: reference.momentum(th, g, lr, n, alpha=0.5, weight_decay=0.1),
        0.05,
    ),
    (
        "8.3 nesterov",
        lambda ps, lr: SGD(ps, lr=lr, momentum=0.9, nesterov=True),
        lambda th, g, lr, n: reference.nesterov(th, g, lr, n, alpha=0.9),
        0.02,
    ),
    (
        "8.3 nesterov + L2",
        lambda ps, lr: SGD(ps, lr=lr, momentum=0.8, nesterov=True, weight_decay=0.1),
        lambda th, g, lr, n: reference.nesterov(th, g, lr, n, alpha=0.8, weight_decay=0.1),
        0.02,
    ),
    ("8.4 adagrad", lambda ps, lr: AdaGrad(ps, lr=lr), lambda th, g, lr, n: reference.adagrad(th, g, lr, n), 0.1),
    # 8.5 (delta inside the root) at 0.001: at 0.01 the iteration turns chaotic once the gradient is small
    # (delta = 1e-6 under the root makes it gradient descent at rate 10): a one-ulp change of the start then ends
    # up to 1e-4 away after 200 steps, and only identical float operations could match a transcription there.
    (
        "8.5 rmsprop",
        lambda ps, lr: RMSProp(ps, lr=lr, rho=0.9),
        lambda th, g, lr, n: reference.rmsprop(th, g, lr, n, rho=0.9),
        0.001,
    ),
    # 8.6 at a learning rate where the iteration is stable: at larger ones a mode of the MLP's output bias grows
    # by ~2x per step for a while, amplifying any rounding difference (the change of variables) far past what a
    # sharp comparison allows.
    (
        "8.6 rmsprop nesterov",
        lambda ps, lr: RMSProp(ps, lr=lr, rho=0.9, momentum=0.5, nesterov=True),
        lambda th, g, lr, n: reference.rmsprop_nesterov(th, g, lr, n, rho=0.9, alpha=0.5),
        0.001,
    ),
    ("8.7 adam", lambda ps, lr: Adam(ps, lr=lr), lambda th, g, lr, n: reference.adam(th, g, lr, n), 0.01),
    (
        "8.7 adam + L2",
        lambda ps, lr: Adam(ps, lr=lr, weight_decay=0.1),
        lambda th, g, lr, n: reference.adam(th, g, lr, n, weight_decay=0.1),
        0.01,
    ),
    (
        "adamw",
        lambda ps, lr: AdamW(ps, lr=lr, weight_decay=0.1),
        lambda th, g, lr, n: reference.adam(th, g, lr, n, weight_decay=0.1, decoupled=True),
        0.01,
    ),
    (
        "delta-bar-delta",
        lambda ps, lr: DeltaBarDelta(ps, lr=lr, kappa=0.005, phi=0.2, theta=0.7, max_rate=math.inf),
        lambda th, g, lr, n: reference.delta_bar_delta(th, g, lr, n, kappa=0.005, phi=0.2, bar_weight=0.7),
        0.05,
    ),
    (  # the bound binds here: the final parameters differ from the unbounded run's by 0.28-0.75
        "delta-bar-delta bounded",
        lambda ps, lr: DeltaBarDelta(ps, lr=lr, kappa=0.005, phi=0.2, theta=0.7, max_rate=0.15),
        lambda th, g, lr, n: reference.delta_bar_delta(
            th, g, lr, n, kappa=0.005, phi=0.2, bar_weight=0.7, max_rate=0.15
        ),
        0.05,
    ),
]


@pytest.mark.parametrize("rate", sorted(RATES))
@pytest.mark.parametrize("problem", [quadratic, mlp], ids=["quadratic", "mlp"])
@pytest.mark.parametrize(("make", "transcription", "base"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_equals_transcription_of_the_pseudo_code(make, transcription, base, problem, rate):
    problem = problem()
    lr = RATES[rate](base)
    got = train(problem, lambda ps: make(ps, lr(0)), lr, STEPS)
    assert_matches_reference(got, _transcription_run(transcription, problem, lr, STEPS), problem.init)


def _transcription_run(transcription, problem, lr, steps):
    """The transcription in tolerance.py's ``run(init, perturb)`` form: ``perturb`` applied to every gradient."""
    return lambda init, perturb: transcription(init, lambda theta: perturb(problem.grad(theta)), lr, steps)


def test_nesterov_parameters_hold_the_interim_point_and_the_view_swaps_in_theta():
    problem = quadratic()
    lr, alpha = (lambda k: 0.02), 0.9
    params = problem.parameters()
    optimizer = SGD(params, lr=0.02, momentum=alpha, nesterov=True)
    for _ in range(50):
        optimizer.zero_grad()
        problem.loss(params).backward()
        optimizer.step()
    flat = lambda: torch.cat([p.detach().reshape(-1) for p in params])  # noqa: E731
    interim = reference.nesterov(problem.init.clone(), problem.grad, lr, 50, alpha=alpha)
    # theta itself = interim - alpha v: recompute theta from the reference's plain momentum bookkeeping
    theta, v = problem.init.clone(), torch.zeros(7, dtype=torch.float64)
    for _ in range(50):
        g = problem.grad(theta + alpha * v)
        v = alpha * v - 0.02 * g
        theta = theta + v
    # 1e-10: momentum on this quadratic (condition number 10) contracts, so a one-ulp change of the start stays
    # below 1e-15 over these 50 steps (tolerance.rounding_drift); 1e-10 is 1e5 of that on any machine, and a
    # wrong interim point (alpha v missing or doubled) is off by ~alpha |v|, orders of magnitude more
    torch.testing.assert_close(flat(), interim, rtol=0, atol=1e-10)
    before = flat().clone()
    with optimizer.evaluation_view():
        torch.testing.assert_close(flat(), theta, rtol=0, atol=1e-10)
    assert torch.equal(flat(), before)  # restored exactly, not recomputed
