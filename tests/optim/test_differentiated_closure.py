"""Newton and HessianFree differentiate their closure themselves (issue 20): after a step ``.grad`` holds the
whole objective's gradient at the starting point (a penalty on the parameters included, also for Gauss-Newton
curvature); ``lr`` scales the step; the closure may return the loss or a ``(loss, output)`` pair."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from regopt.optim import HessianFree, Newton, differentiates_closure, needs_closure

ALPHA = 0.3


def problem() -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    return model, torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))


def objective(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    output = model(x)
    weights = torch.cat([p.flatten() for p in model.parameters()])
    return nn.functional.cross_entropy(output, y) + ALPHA * weights.pow(2).sum(), output


def gradient_at(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    loss, _ = objective(model, x, y)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: Newton(ps, damping=0.1, saddle_free=True),
        lambda ps: HessianFree(ps, curvature="ggn"),
        lambda ps: HessianFree(ps, curvature="hessian"),
    ],
    ids=["newton", "hf-ggn", "hf-hessian"],
)
def test_grad_holds_the_whole_objectives_gradient_at_the_start(make) -> None:
    model, x, y = problem()
    optimizer = make(list(model.parameters()))
    assert needs_closure(optimizer) and differentiates_closure(optimizer)
    expected = gradient_at(model, x, y)  # cross-entropy through the output, and the penalty directly
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    optimizer.step(lambda: objective(model, x, y))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).abs().max() > 1e-3  # the step moved, so .grad is not the gradient at the end
    seen = torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]
    torch.testing.assert_close(seen, expected, rtol=1e-12, atol=1e-14)


def test_hessian_free_ggn_steps_downhill_on_the_penalty() -> None:
    # a penalty the output does not see: J' dl/dz misses its gradient, the whole gradient has it
    model, x, y = problem()
    optimizer = HessianFree(list(model.parameters()), curvature="ggn", damping=1.0)
    start, _ = objective(model, x, y)
    for _ in range(5):
        optimizer.step(lambda: objective(model, x, y))
    end, _ = objective(model, x, y)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert end.item() < 0.8 * start.item()
    assert float(weights.norm()) < 0.5  # the penalty pulled the weights in (they start at norm 1.4)


def test_newton_lr_scales_the_full_step_on_a_quadratic() -> None:
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    minimum = torch.linalg.solve(a, b)

    def run(lr: float) -> Tensor:
        x = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        Newton([x], lr=lr).step(lambda: 0.5 * x @ a @ x - b @ x)
        return x.detach()

    torch.testing.assert_close(run(1.0), minimum, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(run(0.25), 0.25 * minimum, rtol=1e-12, atol=1e-14)  # a quarter of the way


def test_hessian_free_lr_scales_the_step_and_its_predicted_reduction() -> None:
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)

    def run(lr: float) -> tuple[Tensor, float]:
        x = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        optimizer = HessianFree([x], curvature="hessian", damping=1e-8, lr=lr)
        optimizer.step(lambda: 0.5 * x @ a @ x - b @ x)
        return x.detach(), optimizer.param_groups[0]["damping"]

    full, half = run(1.0), run(0.5)
    torch.testing.assert_close(half[0], 0.5 * full[0], rtol=1e-9, atol=1e-12)
    # on a quadratic the model is exact: rho = 1 at any lr, so lambda shrinks by 2/3 both times
    assert full[1] == pytest.approx(1e-8 * 2 / 3) and half[1] == pytest.approx(1e-8 * 2 / 3)


@pytest.mark.parametrize("lr", [1.0, 0.3])
@pytest.mark.parametrize("cg_max_iter", [1, 10])
def test_hessian_free_predicts_a_quadratics_change_exactly(lr: float, cg_max_iter: int) -> None:
    # q(s) = g's + 1/2 s'Hs (undamped) is the quadratic itself: rho = 1 to rounding at every step, whatever lr,
    # damping and truncation (one CG product leaves d'Hd != -g'd, so the residual's sign is checked too)
    a = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    x = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = HessianFree([x], curvature="hessian", damping=0.5, lr=lr, cg_max_iter=cg_max_iter)
    for _ in range(3):
        if float((a @ x.detach() - b).norm()) < 1e-6:  # at the minimum: no change to predict
            break
        optimizer.step(lambda: 0.5 * x @ a @ x - b @ x)
        assert float(optimizer.state[x]["rho"]) == pytest.approx(1.0, abs=1e-9)
    assert int(optimizer.state[x]["n_iter"]) >= 2


def test_hessian_free_handles_a_parameter_the_loss_does_not_use() -> None:
    model, x, y = problem()
    unused = nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = HessianFree([*model.parameters(), unused], curvature="hessian")
    start, _ = objective(model, x, y)
    for _ in range(3):
        optimizer.step(lambda: objective(model, x, y))
    assert objective(model, x, y)[0].item() < start.item()
    assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))
    assert unused.grad is None  # as backward() leaves it; the used parameters have theirs
    assert all(p.grad is not None for p in model.parameters())


def test_newton_leaves_the_grad_of_a_parameter_the_loss_does_not_use() -> None:
    model, x, y = problem()
    unused = nn.Parameter(torch.ones(3, dtype=torch.float64))
    Newton([*model.parameters(), unused], damping=0.1, saddle_free=True).step(lambda: objective(model, x, y))
    assert unused.grad is None and all(p.grad is not None for p in model.parameters())


def test_hessian_free_steps_downhill_from_negative_curvature() -> None:
    # f = -p0^2 + p0^4 + p1^2 at p0 = 0.3: the first CG direction, -g, has g'(H + lambda I)g < 0 at lambda = 0.5;
    # Newton-CG then takes the steepest-descent step (N&W Algorithm 7.1) instead of none at all
    p = nn.Parameter(torch.tensor([0.3, 0.1], dtype=torch.float64))

    def f() -> Tensor:
        return -(p[0] ** 2) + p[0] ** 4 + p[1] ** 2

    optimizer = HessianFree([p], curvature="hessian", damping=0.5)
    start = f().item()
    for _ in range(10):
        optimizer.step(f)
    assert f().item() < start - 0.1  # -0.072 -> near the minimum -0.25 at p0 = 1/sqrt(2)
    assert abs(p[0].item() - 2**-0.5) < 0.05


def test_hessian_free_raises_damping_past_a_nan_trial_point() -> None:
    # f = (x - 3)^2 + 0.1 log(1.5 - x) from 0: the first full step lands past x = 1.5, where f is NaN
    x = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def f() -> Tensor:
        return ((x - 3) ** 2 + 0.1 * torch.log(1.5 - x)).sum()

    optimizer = HessianFree([x], curvature="hessian", damping=0.01)
    optimizer.step(f)
    assert optimizer.param_groups[0]["damping"] == pytest.approx(0.015)  # rho NaN: lambda grew
    for _ in range(20):
        optimizer.step(f)
    assert 1.0 < x.item() < 1.5  # moved toward the barrier instead of repeating the rejected step


def test_hessian_free_refuses_a_loss_without_a_graph() -> None:
    x = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="HessianFree's closure returned a loss without a graph"):
        HessianFree([x], curvature="hessian").step(lambda: torch.tensor(1.0))


@pytest.mark.parametrize("make", [Newton, HessianFree], ids=["newton", "hessian_free"])
def test_bad_lr_is_refused(make) -> None:
    with pytest.raises(ValueError, match="lr"):
        make([nn.Parameter(torch.zeros(2))], lr=0.0)
