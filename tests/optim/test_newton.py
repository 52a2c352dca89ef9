"""Newton's method with the exact Hessian (float64): one step on a quadratic, saddles, damping, Rosenbrock."""

from __future__ import annotations

import pytest
import torch

from regopt.optim import Newton
from tests.optim.problems import quadratic


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def _quadratic_minimum(problem) -> torch.Tensor:
    """The minimizer A^{-1} b of 1/2 theta'A theta - b'theta, from its Hessian and gradient at 0."""
    zero = torch.zeros_like(problem.init)
    a = torch.autograd.functional.hessian(lambda t: problem.loss(problem.split(t)), zero)
    return torch.linalg.solve(a, -problem.grad(zero)), a


def test_solves_a_quadratic_in_one_step():
    problem = quadratic()
    params = problem.parameters()
    opt = Newton(params)
    opt.step(lambda: problem.loss(params))
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    expected, _ = _quadratic_minimum(problem)
    torch.testing.assert_close(theta, expected, rtol=0, atol=1e-10)
    assert int(opt.state[params[0]]["func_evals"]) == 1


def test_damping_solves_the_damped_system():
    problem = quadratic()
    params = problem.parameters()
    Newton(params, damping=0.5).step(lambda: problem.loss(params))
    _, a = _quadratic_minimum(problem)
    g0 = problem.grad(problem.init)
    expected = problem.init - torch.linalg.solve(a + 0.5 * torch.eye(7, dtype=torch.float64), g0)
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in params]), expected, rtol=0, atol=1e-12)


def _saddle_step(**kwargs) -> torch.Tensor:
    xy = torch.nn.Parameter(torch.tensor([1.0, 0.5], dtype=torch.float64))
    Newton([xy], **kwargs).step(lambda: xy[0] ** 2 - xy[1] ** 2)
    return xy.detach()


def test_plain_newton_jumps_to_the_saddle_and_saddle_free_moves_away():
    # f = x^2 - y^2, H = diag(2, -2): the Newton step is -(x, y), straight onto the saddle at 0
    torch.testing.assert_close(_saddle_step(), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-15)
    # |H| = diag(2, 2): the step is -(x, -y), descending in y too, away from the saddle; f drops from 0.75 to -1
    free = _saddle_step(saddle_free=True)
    torch.testing.assert_close(free, torch.tensor([0.0, 1.0], dtype=torch.float64), rtol=0, atol=1e-15)
    # damping lambda = 1 (H + I = diag(3, -1)) still moves toward the saddle along y: y <- 0.5 - 0.5 * (-2 / -1)
    damped = _saddle_step(damping=1.0)
    torch.testing.assert_close(damped, torch.tensor([1 / 3, -0.5], dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "max_evals"), [({"line_search": "backtracking"}, 60), ({"saddle_free": True, "damping": 1e-3}, 60)]
)
def test_reaches_rosenbrocks_minimum(kwargs, max_evals, capsys):
    xy = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    opt = Newton([xy], **{"line_search": "backtracking", **kwargs})
    steps = 0
    while (xy.detach() - 1).abs().max() > 1e-6 and steps < 200:
        opt.step(lambda: rosenbrock(xy))
        steps += 1
    evals = int(opt.state[xy]["func_evals"])
    with capsys.disabled():
        print(f"\nNewton{kwargs} on Rosenbrock from (-1.2, 1): {steps} steps, {evals} closure evaluations")
    torch.testing.assert_close(xy.detach(), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)
    assert evals <= max_evals


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).double()


def _steps(model, opt, ks):
    for k in ks:
        gen = torch.Generator().manual_seed(k)
        x, y = torch.randn(16, 3, generator=gen, dtype=torch.float64), torch.randn(16, 1, generator=gen)
        opt.step(lambda x=x, y=y: torch.nn.functional.mse_loss(model(x), y.double()))


def test_state_dict_round_trip_continues_identically(tmp_path):
    model = _model()
    opt = Newton(model.parameters(), damping=1.0, line_search="backtracking")
    _steps(model, opt, range(3))
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.pt")
    _steps(model, opt, range(3, 6))
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh = _model()
    fresh.load_state_dict(saved["model"])
    fresh_opt = Newton(fresh.parameters(), damping=1.0, line_search="backtracking")
    fresh_opt.load_state_dict(saved["optimizer"])
    _steps(fresh, fresh_opt, range(3, 6))
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)
    first, fresh_first = next(model.parameters()), next(fresh.parameters())
    for name, value in opt.state[first].items():
        assert torch.equal(value, fresh_opt.state[fresh_first][name]), name


def test_refuses_more_parameters_than_the_limit():
    with pytest.raises(ValueError, match=r"2001 parameters exceed max_params=2000"):
        Newton([torch.zeros(2001, requires_grad=True)])
    with pytest.raises(ValueError, match=r"26 parameters exceed max_params=20"):
        Newton(_model().parameters(), max_params=20)
    Newton([torch.zeros(2000, requires_grad=True)])  # at the limit is fine


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"damping": -1.0}, "damping"),
        ({"damping": float("nan")}, "damping"),
        ({"saddle_free": "yes"}, "saddle_free"),
        ({"line_search": "wolfe"}, "line_search"),
        ({"max_params": 0}, "max_params"),
        ({"max_params": True}, "max_params"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=f"^Invalid {name}: "):  # torch.optim's wording
        Newton([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_closures_and_singular_systems_say_so():
    w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs a closure"):
        Newton([w]).step()
    with pytest.raises(ValueError, match="takes one parameter group"):
        Newton([{"params": [w]}, {"params": [torch.nn.Parameter(torch.ones(1))]}])

    def backward_closure():
        loss = (w**2).sum()
        loss.backward()
        return loss.detach()

    with pytest.raises(ValueError, match="without a graph"):
        Newton([w]).step(backward_closure)
    with pytest.raises(ValueError, match="scalar loss"):
        Newton([w]).step(lambda: 1.0)
    with pytest.raises(ValueError, match=r"singular.*damping"):
        Newton([w]).step(lambda: w.sum())  # H = 0
    Newton([w], damping=1.0).step(lambda: w.sum())  # damped: a gradient step of length 1/lambda
    torch.testing.assert_close(w.detach(), torch.zeros(2, dtype=torch.float64))


def test_hessian_rows_one_at_a_time_when_vmap_fails(monkeypatch):
    """Without a batching rule (``is_grads_batched`` raising) the rows come one by one: the same step."""
    problem = quadratic()
    batched = problem.parameters()
    Newton(batched).step(lambda: problem.loss(batched))
    real_grad = torch.autograd.grad
    calls = []

    def no_vmap(*args, **kwargs):
        calls.append(kwargs.get("is_grads_batched", False))
        if kwargs.get("is_grads_batched", False):
            raise RuntimeError("Batching rule not implemented")
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_vmap)
    single = problem.parameters()
    Newton(single).step(lambda: problem.loss(single))
    assert calls == [False, True] + [False] * 7  # the gradient, the failed block, then 7 rows
    for p, q in zip(batched, single, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12)


def test_saddle_free_direction_of_a_float32_problem_is_the_float64_one_rounded():
    g32 = torch.Generator().manual_seed(3)
    a = torch.randn(40, 40, generator=g32)
    h = (a + a.T).float()  # indefinite
    g = torch.randn(40, generator=g32).float()
    d = Newton.direction(g, h, 0.1, True)
    assert d.dtype == torch.float32
    evals, q = torch.linalg.eigh(h.double())
    expected = -(q @ ((q.T @ g.double()) / (evals.abs() + 0.1)))
    torch.testing.assert_close(d.double(), expected, rtol=1e-6, atol=1e-6)


def test_a_non_finite_loss_leaves_the_parameters_to_the_callers_guard():
    x = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    loss = Newton([x], damping=0.1).step(lambda: (x * float("nan")).sum())
    assert torch.isnan(loss)
    assert x.tolist() == [1.0, 2.0]  # no solve of a NaN model, no exception: the training loop's guard decides
