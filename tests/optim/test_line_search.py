"""The strong-Wolfe line search against torch's private ``_strong_wolfe`` (the same algorithm) and the conditions."""

from __future__ import annotations

import pytest
import torch
from torch.optim.lbfgs import _strong_wolfe

from regopt.optim.line_search import _Point, cubic_minimizer, strong_wolfe
from tests.optim.closure_problems import F64, rosenbrock, spd_system

C1, C2 = 1e-4, 0.9


def rosenbrock_f(x: torch.Tensor) -> tuple[float, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    loss = rosenbrock(x)
    (g,) = torch.autograd.grad(loss, x)
    return float(loss.detach()), g


def quadratic_f(x: torch.Tensor) -> tuple[float, torch.Tensor]:
    a, b = spd_system(6, 100.0)
    return float(0.5 * x @ a @ x - b @ x), a @ x - b


# (function, start, first trial step): t=1 accepted or zoomed, tiny t extrapolates, huge t zooms at length
CASES = [
    (rosenbrock_f, [-1.2, 1.0], 1.0),
    (rosenbrock_f, [-1.2, 1.0], 1e-5),
    (rosenbrock_f, [0.5, -0.3], 1.0),
    (rosenbrock_f, [2.0, 2.0], 1e-4),
    (quadratic_f, [1.0, -1.0, 0.5, 2.0, 0.0, 1.0], 1.0),
    (quadratic_f, [1.0, -1.0, 0.5, 2.0, 0.0, 1.0], 1e-3),
    (quadratic_f, [1.0, -1.0, 0.5, 2.0, 0.0, 1.0], 50.0),
]


@pytest.mark.parametrize(("fn", "start", "t0"), CASES)
@pytest.mark.parametrize("c2", [0.9, 0.1])
def test_same_step_as_torch_and_strong_wolfe_holds(fn, start, t0, c2):
    x = torch.tensor(start, dtype=F64)
    f, g = fn(x)
    d = -g
    gtd = float(g.dot(d))
    calls = [0]

    def evaluate(t: float, d: torch.Tensor) -> tuple[float, torch.Tensor]:
        calls[0] += 1
        return fn(x + t * d)

    ours = strong_wolfe(evaluate, t0, d, f, g, g.dot(d), c2=c2)
    f_t, g_t, t_t, evals_t = _strong_wolfe(lambda x_, t, d_: fn(x_ + t * d_), x, t0, d, f, g, g.dot(d), c2=c2)
    assert ours.evals == calls[0] == evals_t
    assert ours.t == pytest.approx(float(t_t), rel=1e-10, abs=0)
    assert ours.loss == pytest.approx(f_t, rel=1e-10, abs=1e-300)
    torch.testing.assert_close(ours.grad, g_t, rtol=1e-10, atol=1e-14)
    # the strong Wolfe conditions at the accepted step, and the returned loss/gradient are those at x + t d
    loss, grad = fn(x + ours.t * d)
    assert ours.loss == loss and torch.equal(ours.grad, grad)
    assert ours.loss <= f + C1 * ours.t * gtd
    assert abs(float(ours.grad.dot(d))) <= c2 * abs(gtd)


def test_budget_caps_evaluations_and_keeps_the_better_end():
    x = torch.tensor([-1.2, 1.0], dtype=F64)
    f, g = rosenbrock_f(x)
    calls = [0]

    def evaluate(t, d):
        calls[0] += 1
        return rosenbrock_f(x + t * d)

    # a tiny first step needs many extrapolations; with max_ls=2 the search stops after 3 evaluations
    found = strong_wolfe(evaluate, 1e-9, -g, f, g, -g.dot(g), max_ls=2)
    assert found.evals == calls[0] == 3
    assert found.loss < f and found.loss == rosenbrock_f(x - found.t * g)[0]


def test_cubic_minimizer_is_exact_on_a_quadratic():
    # phi(t) = (t - 0.3)^2: phi(0) = 0.09, phi'(0) = -0.6, phi(1) = 0.49, phi'(1) = 1.4 -> minimizer 0.3
    a = _Point(0.0, 0.09, torch.zeros(1), torch.tensor(-0.6, dtype=F64))
    b = _Point(1.0, 0.49, torch.zeros(1), torch.tensor(1.4, dtype=F64))
    assert cubic_minimizer(a, b) == pytest.approx(0.3, abs=1e-15)
    assert cubic_minimizer(b, a) == cubic_minimizer(a, b)
    assert cubic_minimizer(a, b, bounds=(0.5, 2.0)) == 0.5  # clipped to the bounds
