"""Equal to torch.optim where torch has the same algorithm (float64, 200 steps, up to what rounding explains on
the problem: tests/optim/tolerance.py), and limiting cases."""

from __future__ import annotations

import pytest
import torch

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, RMSProp
from regopt.optim.adam import adam_update
from regopt.optim.rmsprop import rmsprop_update
from tests.optim.problems import mlp, quadratic, run_of
from tests.optim.tolerance import assert_matches_reference

STEPS = 200
CASES = [
    ("sgd", lambda ps: SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    (
        "sgd + L2",
        lambda ps: SGD(ps, lr=0.1, weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01),
    ),
    ("momentum", lambda ps: SGD(ps, lr=0.02, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9)),
    # Nesterov after the change of variables: torch's parameters are the chapter's interim point theta + alpha v
    (
        "nesterov",
        lambda ps: SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
    ),
    ("adagrad", lambda ps: AdaGrad(ps, lr=0.1, eps=1e-10), lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-10)),
    (
        "rmsprop",
        lambda ps: RMSProp(ps, lr=0.01, rho=0.99, eps=1e-8, eps_inside_sqrt=False),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8),
    ),
    (
        "rmsprop momentum",
        lambda ps: RMSProp(ps, lr=0.001, rho=0.9, eps=1e-8, momentum=0.5, eps_inside_sqrt=False),
        lambda ps: torch.optim.RMSprop(ps, lr=0.001, alpha=0.9, eps=1e-8, momentum=0.5),
    ),
    ("adam", lambda ps: Adam(ps, lr=0.01, eps_inside_sqrt=False), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    (
        "adam + L2",
        lambda ps: Adam(ps, lr=0.01, weight_decay=0.1, eps_inside_sqrt=False),
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    ),
    (
        "adamw",
        lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1, eps_inside_sqrt=False),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    ),
    # delta-bar-delta with kappa = phi = 0 never changes its rates: SGD
    (
        "dbd kappa=phi=0",
        lambda ps: DeltaBarDelta(ps, lr=0.1, kappa=0.0, phi=0.0),
        lambda ps: torch.optim.SGD(ps, lr=0.1),
    ),
]


@pytest.mark.parametrize("problem", [quadratic, mlp], ids=["quadratic", "mlp"])
@pytest.mark.parametrize(("ours", "theirs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_equals_torch_optim(ours, theirs, problem):
    # torch.optim and regopt round differently (foreach kernels vs one fused update), and rmsprop with momentum on
    # the MLP amplifies a one-ulp difference ~1e7-fold in these steps: 3e-13 apart on an AMD EPYC, 2.8e-10 on an
    # Intel Xeon. The tolerance is measured on the problem (100x torch's own one-ulp drift, tolerance.py).
    problem = problem()
    got = _train_constant(problem, ours)
    assert_matches_reference(got, run_of(problem, theirs, STEPS), problem.init)


def _train_constant(problem, make):
    params = problem.parameters()
    optimizer = make(params)
    for _ in range(STEPS):
        optimizer.zero_grad()
        problem.loss(params).backward()
        optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in params])


def test_rmsprop_is_adam_with_beta1_zero_and_no_bias_correction():
    gen = torch.Generator().manual_seed(0)
    theta_a = torch.randn(100, dtype=torch.float64, generator=gen)
    theta_b, r_a, r_b = theta_a.clone(), torch.zeros(100, dtype=torch.float64), torch.zeros(100, dtype=torch.float64)
    s, v = torch.zeros(100, dtype=torch.float64), torch.zeros(100, dtype=torch.float64)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    for _ in range(50):
        g = torch.randn(100, dtype=torch.float64, generator=gen)
        adam_update(
            theta_a,
            g,
            s,
            r_a,
            lr=t(0.01),
            rho1=t(0.0),
            rho2=t(0.9),
            delta=t(1e-6),
            correction1=t(1.0),
            correction2=t(1.0),
            weight_decay=t(0.0),
            decay=False,
            decoupled=False,
            delta_inside_sqrt=True,
        )
        rmsprop_update(
            theta_b,
            g,
            r_b,
            v,
            lr=t(0.01),
            rho=t(0.9),
            delta=t(1e-6),
            alpha=t(0.0),
            weight_decay=t(0.0),
            decay=False,
            momentum=False,
            nesterov=False,
            delta_inside_sqrt=True,
        )
    # 1e-12: the gradients are drawn, not computed from theta, so nothing feeds back and nothing amplifies; two
    # orderings of one update differ by a few ulps of the step (lr 0.01) per step, ~1e-15 after 50 steps, on any
    # machine; a wrong rho or delta moves theta by ~1e-4
    torch.testing.assert_close(theta_a, theta_b, rtol=0, atol=1e-12)
    torch.testing.assert_close(r_a, r_b, rtol=0, atol=1e-12)


def test_delta_bar_delta_rates_follow_the_sign_rule():
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = DeltaBarDelta([w], lr=0.1, kappa=0.05, phi=0.5, theta=0.0)  # theta=0: bar-delta = last gradient
    for g in ([1.0, 1.0, 0.0], [1.0, -1.0, 1.0], [2.0, 1.0, 0.0]):
        w.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    # step 1: bar = 0, rates stay 0.1; step 2: agree / disagree / bar 0; step 3: agree / disagree / bar*g = 0
    expected_rates = torch.tensor([0.1 + 0.05 + 0.05, 0.1 * 0.5 * 0.5, 0.1], dtype=torch.float64)
    # 1e-15: three steps of a handful of correctly rounded float64 operations on values below 1 (an ulp ~1e-16),
    # the same on any machine up to a fused multiply-add; a wrong rule moves a rate by >= 0.025
    torch.testing.assert_close(optimizer.state[w]["rate"], expected_rates, rtol=0, atol=1e-15)
    expected_w = -(0.1 * 1 + 0.15 * 1 + 0.2 * 2), -(0.1 * 1 + 0.05 * -1 + 0.025 * 1), -(0.1 * 1)
    torch.testing.assert_close(w.detach(), torch.tensor(expected_w, dtype=torch.float64), rtol=0, atol=1e-15)
