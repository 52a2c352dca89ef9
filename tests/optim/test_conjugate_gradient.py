"""Linear CG against a literal transcription of the textbook recurrence; nonlinear CG against linear CG."""

from __future__ import annotations

import re

import pytest
import torch

from regopt.optim import ConjugateGradient, conjugate_gradient
from regopt.optim.conjugate_gradient import linear_cg
from tests.optim.closure_problems import (
    F64,
    assert_deepcopy_steps_alike,
    assert_resumes,
    exact_quadratic_line_search,
    flat,
    make_run,
    minimize_rosenbrock,
    spd_system,
)

N = 12
# Condition number 10: in exact arithmetic CG ends in n iterations at any condition number, but in float64 the
# residuals lose orthogonality as kappa grows (kappa = 100 needs 14 iterations for n = 12), so the test of the
# n-step property uses a problem where rounding stays at the 1e-15 level.
KAPPA = 10.0


def textbook_cg(a: list[list[float]], b: list[float], steps: int) -> list[list[float]]:
    """Nocedal & Wright (2006) Algorithm 5.2, line by line in plain Python floats, from x_0 = 0."""
    n = len(b)

    def dot(u, v):
        return sum(ui * vi for ui, vi in zip(u, v, strict=True))

    def matvec(v):
        return [dot(row, v) for row in a]

    x = [0.0] * n
    r = [axi - bi for axi, bi in zip(matvec(x), b, strict=True)]  # r_0 = A x_0 - b
    p = [-ri for ri in r]  # p_0 = -r_0
    iterates = []
    for _ in range(steps):
        ap = matvec(p)
        alpha = dot(r, r) / dot(p, ap)  # alpha_k = r'r / p'Ap
        x = [xi + alpha * pi for xi, pi in zip(x, p, strict=True)]  # x_{k+1} = x_k + alpha_k p_k
        r_next = [ri + alpha * api for ri, api in zip(r, ap, strict=True)]  # r_{k+1} = r_k + alpha_k A p_k
        beta = dot(r_next, r_next) / dot(r, r)  # beta_{k+1} = r_{k+1}'r_{k+1} / r_k'r_k
        p = [-ri + beta * pi for ri, pi in zip(r_next, p, strict=True)]  # p_{k+1} = -r_{k+1} + beta p_k
        r = r_next
        iterates.append(x)
    return iterates


def test_linear_cg_solves_an_spd_system_in_at_most_n_iterations():
    a, b = spd_system(N, KAPPA)
    x, iterations = conjugate_gradient(a, b, tol=1e-10)
    assert iterations <= N
    assert float((a @ x - b).norm()) <= 1e-10 * float(b.norm())
    # the same from a matrix-vector product (a Hessian-vector product in practice)
    x_mv, iterations_mv = conjugate_gradient(lambda v: a @ v, b, tol=1e-10)
    assert iterations_mv == iterations and torch.equal(x_mv, x)


def test_linear_cg_iterates_match_the_textbook_recurrence():
    a, b = spd_system(N, KAPPA)
    iterates: list[torch.Tensor] = []
    conjugate_gradient(a, b, tol=0.0, max_iter=N, callback=iterates.append)
    expected = textbook_cg(a.tolist(), b.tolist(), N)
    assert len(iterates) == N
    for ours, theirs in zip(iterates, expected, strict=True):
        torch.testing.assert_close(ours, torch.tensor(theirs, dtype=F64), rtol=1e-11, atol=1e-11)


def test_linear_cg_with_a_few_distinct_eigenvalues_stops_early():
    # A with 3 distinct eigenvalues: CG terminates in 3 iterations (Nocedal & Wright Theorem 5.4)
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(N, N, generator=gen, dtype=F64))
    a = q @ torch.diag(torch.tensor([1.0, 5.0, 20.0], dtype=F64).repeat(N // 3)) @ q.T
    b = torch.randn(N, generator=gen, dtype=F64)
    x, iterations = conjugate_gradient(a, b, tol=1e-10)
    assert iterations == 3
    assert float((a @ x - b).norm()) <= 1e-10 * float(b.norm())


def test_linear_cg_stops_at_nonpositive_curvature_with_the_iterate_so_far():
    """Truncated Newton's rule (what HessianFree relies on), worked by hand: A = diag(2, -1), b = (2, 1), x0 = 0.
    p0 = b, p0'Ap0 = 7, alpha0 = 5/7, x1 = (10/7, 5/7), r1 = (6/7, -12/7), beta1 = 36/49, p1 = (30/49, 120/49),
    p1'Ap1 = (1800 - 14400) / 2401 < 0: stop with x1 after the 2 products A p0, A p1 (x0 = 0 costs none)."""
    a, b = torch.diag(torch.tensor([2.0, -1.0], dtype=F64)), torch.tensor([2.0, 1.0], dtype=F64)
    products: list[torch.Tensor] = []
    run = linear_cg(lambda v: products.append(v) or a @ v, b, torch.zeros(2, dtype=F64), atol=0.0, max_iter=10)
    assert (run.iterations, run.nonpositive_curvature, len(products)) == (1, True, 2)
    torch.testing.assert_close(run.x, torch.tensor([10 / 7, 5 / 7], dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(run.residual, a @ run.x - b, rtol=0, atol=1e-15)


def test_linear_cg_absolute_tolerance_and_starting_point():
    a, b = spd_system(N, KAPPA)
    x_tight, tight = conjugate_gradient(a, b, tol=1e-10)
    x_loose, loose = conjugate_gradient(a, b, tol=1e-10, atol=1e-3 * float(b.norm()))
    assert loose < tight
    assert 1e-10 * float(b.norm()) < float((a @ x_loose - b).norm()) <= 1e-3 * float(b.norm())
    assert conjugate_gradient(a, b, x0=x_tight, tol=1e-10).iterations == 0  # already solved


@pytest.mark.parametrize("variant", ["polak_ribiere", "fletcher_reeves"])
def test_nonlinear_cg_with_exact_line_search_equals_linear_cg(variant):
    a, b = spd_system(N, KAPPA)
    linear: list[torch.Tensor] = []
    conjugate_gradient(a, b, tol=0.0, max_iter=N, callback=linear.append)
    run = make_run(
        lambda ps: 0.5 * ps[0] @ a @ ps[0] - b @ ps[0],
        [torch.zeros(N, dtype=F64)],
        lambda ps: ConjugateGradient(ps, variant, line_search=exact_quadratic_line_search, max_iter=1),
    )
    for k in range(N):
        run.optimizer.step(run.closure)
        torch.testing.assert_close(flat(run.params), linear[k], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("variant", ["polak_ribiere", "fletcher_reeves"])
def test_reaches_rosenbrock_minimum(variant):
    kwargs = {"tolerance_grad": 1e-10, "tolerance_change": 1e-15, "max_iter": 100}
    x, calls = minimize_rosenbrock(lambda ps: ConjugateGradient(ps, variant, **kwargs))
    assert (x - 1).abs().max() <= 1e-6
    print(f"ConjugateGradient({variant}) on Rosenbrock from (-1.2, 1): {calls} closure evaluations")
    assert calls <= 150  # measured: PR+ 91, FR 88 (restarts every n = 2 iterations)


def test_restarts_every_restart_iterations_and_on_lost_conjugacy():
    opt = ConjugateGradient([torch.nn.Parameter(torch.zeros(3, dtype=F64))], restart=2)
    g_prev = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    state = {"n_iter": 2, "since_restart": 0, "prev_flat_grad": g_prev, "d": -g_prev}
    g = torch.tensor([0.0, 1.0, 0.0], dtype=F64)  # orthogonal to g_prev: conjugacy kept
    torch.testing.assert_close(opt._direction(state, g), torch.tensor([-1.0, -1.0, 0.0], dtype=F64))  # beta = 1
    assert state["since_restart"] == 1
    assert torch.equal(opt._direction({**state, "since_restart": 1}, g), -g)  # the 2nd CG step: restart
    tilted = torch.tensor([0.3, 1.0, 0.0], dtype=F64)  # |g'g_prev| = 0.3 >= 0.2 ||g||^2 = 0.218: Powell restart
    assert torch.equal(opt._direction(dict(state), tilted), -tilted)
    fr = ConjugateGradient([torch.nn.Parameter(torch.zeros(3, dtype=F64))], "fletcher_reeves")
    ascent = {**state, "d": 10 * g}  # -g + beta d points uphill: restart along -g
    assert torch.equal(fr._direction(ascent, g), -g)


def test_state_dict_round_trip():
    assert_resumes(lambda ps: ConjugateGradient(ps, max_iter=3))


def test_deepcopy_steps_alike():
    assert_deepcopy_steps_alike(lambda ps: ConjugateGradient(ps, max_iter=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "hestenes"}, "Invalid variant: 'hestenes' (must be 'polak_ribiere' or 'fletcher_reeves')"),
        ({"restart": 0}, "Invalid restart: 0 (must be an integer >= 1)"),
        ({"restart": True}, "Invalid restart: True (must be an integer >= 1)"),
        ({"lr": -1.0}, "Invalid lr: -1.0 (must be a finite number > 0)"),
        ({"line_search": "armijo"}, "Invalid line_search: 'armijo' (must be 'strong_wolfe', None or a callable)"),
        ({"max_iter": 0}, "Invalid max_iter: 0 (must be an integer >= 1)"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ConjugateGradient([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_one_parameter_group_and_a_closure():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    expected = r"^ConjugateGradient takes one parameter group \(its update couples all parameters\), got a second$"
    with pytest.raises(ValueError, match=expected):
        ConjugateGradient([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="needs a closure"):
        ConjugateGradient([a]).step(None)  # type: ignore[arg-type]


def test_linear_cg_bad_arguments():
    with pytest.raises(ValueError, match=r"a must be a 3 x 3 matrix to match b, got shape \(2, 2\)"):
        conjugate_gradient(torch.eye(2), torch.ones(3))
    with pytest.raises(ValueError, match="b must be a vector"):
        conjugate_gradient(torch.eye(2), torch.ones(2, 1))
