"""BFGS: the secant equation, M_n = H^{-1} on a quadratic, Rosenbrock, the parameter limit, arguments, resume."""

from __future__ import annotations

import re

import pytest
import torch

from regopt.optim import BFGS
from regopt.optim.bfgs import MAX_PARAMETERS, bfgs_update
from tests.optim.closure_problems import (
    F64,
    assert_deepcopy_steps_alike,
    assert_resumes,
    exact_quadratic_line_search,
    make_run,
    minimize_rosenbrock,
    spd_system,
)

N = 8


def test_update_satisfies_the_secant_equation_and_matches_the_product_form():
    gen = torch.Generator().manual_seed(0)
    h = torch.eye(5, dtype=F64) * 0.7
    s, y = torch.randn(5, generator=gen, dtype=F64), torch.randn(5, generator=gen, dtype=F64)
    y = y if y.dot(s) > 0 else -y
    updated = bfgs_update(h, s, y)
    torch.testing.assert_close(updated @ y, s, rtol=1e-12, atol=1e-12)  # M_{k+1} y_k = s_k
    rho = 1 / y.dot(s)
    eye = torch.eye(5, dtype=F64)
    product = (eye - rho * torch.outer(s, y)) @ h @ (eye - rho * torch.outer(y, s)) + rho * torch.outer(s, s)
    torch.testing.assert_close(updated, product, rtol=1e-12, atol=1e-12)  # eq. (6.17) as written


def test_inverse_approximation_converges_to_the_inverse_hessian_on_a_quadratic():
    a, b = spd_system(N, 10.0)
    run = make_run(
        lambda ps: 0.5 * ps[0] @ a @ ps[0] - b @ ps[0],
        [torch.zeros(N, dtype=F64)],
        lambda ps: BFGS(
            ps,
            line_search=exact_quadratic_line_search,
            max_iter=N,
            max_eval=4 * N,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        ),
    )
    run.optimizer.step(run.closure)
    state = run.optimizer.state[run.params[0]]
    assert state["updates"] == N
    torch.testing.assert_close(state["H"], torch.linalg.inv(a), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(run.params[0].detach(), torch.linalg.solve(a, b), rtol=1e-10, atol=1e-10)


def test_reaches_rosenbrock_minimum():
    kwargs = {"tolerance_grad": 1e-10, "tolerance_change": 1e-15, "max_iter": 100}
    x, calls = minimize_rosenbrock(lambda ps: BFGS(ps, **kwargs))
    assert (x - 1).abs().max() <= 1e-6
    print(f"BFGS on Rosenbrock from (-1.2, 1): {calls} closure evaluations")
    assert calls <= 60  # measured: 48


def test_refuses_models_above_the_parameter_limit():
    big = torch.nn.Parameter(torch.zeros(MAX_PARAMETERS + 1))
    with pytest.raises(ValueError, match=f"{MAX_PARAMETERS + 1} parameters exceed the limit of max_params=4096"):
        BFGS([big])
    with pytest.raises(ValueError, match="10 parameters exceed the limit of max_params=9; use LBFGS"):
        BFGS([torch.nn.Parameter(torch.zeros(10))], max_params=9)
    BFGS([big], max_params=MAX_PARAMETERS + 1)  # a raised limit lets it through


def test_state_dict_round_trip():
    assert_resumes(lambda ps: BFGS(ps, max_iter=3))


def test_deepcopy_steps_alike():
    assert_deepcopy_steps_alike(lambda ps: BFGS(ps, max_iter=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0}, "Invalid lr: 0 (must be a finite number > 0)"),
        ({"max_params": 0}, "Invalid max_params: 0 (must be an integer >= 1)"),
        ({"max_eval": 0}, "Invalid max_eval: 0 (must be an integer >= 1)"),
        ({"tolerance_grad": -1.0}, "Invalid tolerance_grad: -1.0 (must be a finite number >= 0)"),
        ({"line_search": "armijo"}, "Invalid line_search: 'armijo' (must be 'strong_wolfe', None or a callable)"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        BFGS([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_one_parameter_group():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="BFGS takes one parameter group"):
        BFGS([{"params": [a]}, {"params": [b]}])
