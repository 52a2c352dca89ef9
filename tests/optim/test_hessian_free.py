"""Hessian-free optimization (float64): its inner CG, damping rule, Rosenbrock, a small classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from regopt.optim import HessianFree
from tests.optim.problems import quadratic


def rosenbrock_residuals(xy: torch.Tensor) -> torch.Tensor:
    """Rosenbrock as ||r||^2: r = (1 - x, 10 (y - x^2))."""
    return torch.stack([1 - xy[0], 10 * (xy[1] - xy[0] ** 2)])


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    return x, (x @ w + 0.5 * torch.randn(64, 3, generator=gen, dtype=torch.float64)).argmax(1)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def test_a_converged_inner_solve_is_the_damped_newton_step():
    problem = quadratic()
    params = problem.parameters()
    opt = HessianFree(params, curvature="hessian", damping=0.3, cg_max_iter=50, cg_tol=1e-13)
    opt.step(lambda: problem.loss(params))
    a = torch.autograd.functional.hessian(lambda t: problem.loss(problem.split(t)), problem.init)
    g0 = problem.grad(problem.init)
    expected = problem.init - torch.linalg.solve(a + 0.3 * torch.eye(7, dtype=torch.float64), g0)
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in params]), expected, rtol=0, atol=1e-10)
    assert int(opt.state[params[0]]["products"]) <= 7  # CG in exact arithmetic: at most n = 7 iterations
    # f is quadratic, so the model's prediction is exact: rho = 1 > 3/4 and lambda shrinks by 2/3
    assert opt.param_groups[0]["damping"] == pytest.approx(0.2, rel=1e-12)


def test_a_step_that_raises_the_loss_is_rejected_and_damping_grows():
    # f = sqrt(1 + x^2) at x = 2: g = 0.894, H = 0.089; with lambda = 0.01 the step overshoots to x = -7
    x = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = HessianFree([x], curvature="hessian", damping=0.01, cg_tol=1e-12)
    opt.step(lambda: torch.sqrt(1 + x[0] ** 2))
    assert x.item() == 2.0
    assert opt.param_groups[0]["damping"] == pytest.approx(0.015, rel=1e-12)
    torch.testing.assert_close(opt.state[x]["direction"], torch.tensor([-0.894427191 / 0.0994427191]).double())


@pytest.mark.parametrize(("curvature", "max_evals"), [("ggn", 90), ("hessian", 90)])
def test_reaches_rosenbrocks_minimum(curvature, max_evals, capsys):
    xy = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    opt = HessianFree([xy], curvature=curvature)

    def closure():
        r = rosenbrock_residuals(xy)
        return (r**2).sum(), r

    steps = 0
    while (xy.detach() - 1).abs().max() > 1e-6 and steps < 200:
        opt.step(closure)
        steps += 1
    state = opt.state[xy]
    with capsys.disabled():
        print(
            f"\nHessianFree({curvature!r}) on Rosenbrock from (-1.2, 1): {steps} steps, "
            f"{int(state['func_evals'])} closure evaluations, {int(state['products'])} curvature products"
        )
    torch.testing.assert_close(xy.detach(), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)
    assert int(state["func_evals"]) <= max_evals


@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_inner_cg_uses_only_curvature_vector_products(curvature, monkeypatch):
    """Every derivative goes through a counted ``torch.autograd.grad`` call with one vector per parameter; no
    Jacobian or Hessian routine runs, and a step takes fewer products than the 67 a Hessian would need."""
    calls: list[int] = []
    real_grad = torch.autograd.grad

    def counting_grad(outputs, inputs, grad_outputs=None, **kwargs):
        assert not kwargs.get("is_grads_batched", False)
        calls.append(1)
        return real_grad(outputs, inputs, grad_outputs=grad_outputs, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("a Jacobian or Hessian was formed")

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    for module, name in [(torch.autograd.functional, "hessian"), (torch.autograd.functional, "jacobian")]:
        monkeypatch.setattr(module, name, forbidden)
    for name in ("hessian", "jacrev", "jacfwd", "vmap"):
        monkeypatch.setattr(torch.func, name, forbidden)

    model, (x, y) = _mlp(), _data()
    dim = sum(p.numel() for p in model.parameters())
    opt = HessianFree(model.parameters(), curvature=curvature, cg_max_iter=6, cg_tol=1e-12)

    def closure():
        out = model(x)
        return F.cross_entropy(out, y), out

    for _ in range(3):
        calls.clear()
        before = int(opt.state[next(model.parameters())].get("products", 0))
        opt.step(closure)
        products = int(opt.state[next(model.parameters())]["products"]) - before
        assert 1 <= products <= 7 < dim == 67  # 6 CG iterations, + 1 for the warm start's residual
        # per step: the gradient (one call for H; dl/dz, J' a and J' dl/dz for G), then each product's calls
        setup, per_product = (1, 1) if curvature == "hessian" else (3, 3)
        assert len(calls) == setup + per_product * products


@pytest.mark.parametrize("curvature", ["ggn", "hessian"])
def test_trains_a_small_classifier(curvature):
    model, (x, y) = _mlp(), _data()
    opt = HessianFree(model.parameters(), curvature=curvature)

    def closure():
        out = model(x)
        return F.cross_entropy(out, y), out

    start = closure()[0].item()
    for _ in range(10):
        opt.step(closure)
    end = closure()[0].item()
    assert start > 1.2
    assert end < 0.25 * start  # measured: 1.238 -> 0.149 (ggn), 0.127 (hessian)


def _steps(model, opt, ks):
    for k in ks:
        gen = torch.Generator().manual_seed(k)
        x = torch.randn(32, 4, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 3, (32,), generator=gen)

        def closure(x=x, y=y):
            out = model(x)
            return F.cross_entropy(out, y), out

        opt.step(closure)


def test_state_dict_round_trip_continues_identically(tmp_path):
    model = _mlp()
    opt = HessianFree(model.parameters(), cg_max_iter=10)
    _steps(model, opt, range(4))
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.pt")
    _steps(model, opt, range(4, 8))
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh = _mlp()
    fresh.load_state_dict(saved["model"])
    fresh_opt = HessianFree(fresh.parameters(), cg_max_iter=10)
    fresh_opt.load_state_dict(saved["optimizer"])
    assert fresh_opt.param_groups[0]["damping"] != 1.0  # the adapted lambda came back
    _steps(fresh, fresh_opt, range(4, 8))
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(p, q)
    first, fresh_first = next(model.parameters()), next(fresh.parameters())
    assert set(opt.state[first]) == {"direction", "rho", "func_evals", "products", "n_iter"}
    for name, value in opt.state[first].items():
        assert torch.equal(value, fresh_opt.state[fresh_first][name]), name
    assert opt.param_groups[0]["damping"] == fresh_opt.param_groups[0]["damping"]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"curvature": "fisher"}, "curvature"),
        ({"damping": 0.0}, "damping"),
        ({"damping": float("inf")}, "damping"),
        ({"cg_max_iter": 0}, "cg_max_iter"),
        ({"cg_max_iter": 2.5}, "cg_max_iter"),
        ({"cg_tol": -1.0}, "cg_tol"),
        ({"warm_start": 1.5}, "warm_start"),
        ({"warm_start": -0.1}, "warm_start"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=f"^Invalid {name}: "):  # torch.optim's wording
        HessianFree([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_closures_say_what_they_must_return():
    w = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs a closure"):
        HessianFree([w]).step()
    with pytest.raises(ValueError, match=r"return \(loss, output\)"):
        HessianFree([w]).step(lambda: (w**2).sum())
    with pytest.raises(ValueError, match="scalar loss"):
        HessianFree([w], curvature="hessian").step(lambda: w**2)
    with pytest.raises(ValueError, match="takes one parameter group"):
        HessianFree([{"params": [w]}, {"params": [torch.nn.Parameter(torch.ones(1))]}])
