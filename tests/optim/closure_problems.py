"""Float64 problems and helpers for the closure-driven line-search optimizers (CG, BFGS, L-BFGS)."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from regopt.optim.line_search import Evaluate, LineSearchResult

F64 = torch.float64


def spd_system(n: int, condition: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A symmetric positive definite ``n x n`` matrix with eigenvalues spread from 1 to ``condition``, and b."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))
    a = q @ torch.diag(torch.logspace(0, float(torch.log10(torch.tensor(condition))), n, dtype=F64)) @ q.T
    return (a + a.T) / 2, torch.randn(n, generator=gen, dtype=F64)


def exact_quadratic_line_search(
    evaluate: Evaluate, t: float, d: Tensor, f: float, g: Tensor, gtd: float
) -> LineSearchResult:
    """Exact minimization along ``d`` of a quadratic: ``phi'`` is linear, so one trial gives the curvature
    ``d'Ad = (phi'(t) - phi'(0)) / t`` and the minimizer ``t* = -phi'(0) / d'Ad`` (two evaluations)."""
    _, g_trial = evaluate(t, d)
    curvature = (float(g_trial.dot(d)) - gtd) / t
    t_star = -gtd / curvature
    loss, grad = evaluate(t_star, d)
    return LineSearchResult(t_star, loss, grad, 2)


def rosenbrock(xy: Tensor) -> Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


@dataclass
class Run:
    """Parameters being optimized, the optimizer and a counting closure."""

    params: list[torch.nn.Parameter]
    optimizer: Any
    closure: Callable[[], Tensor]
    calls: list[int]


def make_run(loss_fn: Callable[[list[Tensor]], Tensor], init: list[Tensor], make_optimizer) -> Run:
    params = [torch.nn.Parameter(t.clone()) for t in init]
    optimizer = make_optimizer(params)
    calls = [0]

    def closure() -> Tensor:
        calls[0] += 1
        optimizer.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    return Run(params, optimizer, closure, calls)


def flat(params: list[torch.nn.Parameter]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def rosenbrock_run(make_optimizer) -> Run:
    return make_run(lambda ps: rosenbrock(ps[0]), [torch.tensor([-1.2, 1.0], dtype=F64)], make_optimizer)


def minimize_rosenbrock(make_optimizer, steps: int = 100) -> tuple[Tensor, int]:
    """Step until ``max |x - (1, 1)| <= 1e-6``; the final point and the number of closure calls."""
    run = rosenbrock_run(make_optimizer)
    for _ in range(steps):
        run.optimizer.step(run.closure)
        if (flat(run.params) - 1).abs().max() <= 1e-6:
            break
    return flat(run.params), run.calls[0]


def logistic_problem(seed: int = 0) -> tuple[Callable[[list[Tensor]], Tensor], list[Tensor]]:
    """L2-regularized logistic regression on 200 fixed-seed points in 5 dimensions (strictly convex)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 5, generator=gen, dtype=F64)
    w_true = torch.randn(5, generator=gen, dtype=F64)
    y = (x @ w_true + 0.5 * torch.randn(200, generator=gen, dtype=F64) > 0).to(F64)

    def loss(ps: list[Tensor]) -> Tensor:
        w, b = ps
        logits = x @ w + b
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        return bce + 1e-3 * (w @ w)

    return loss, [torch.zeros(5, dtype=F64), torch.zeros(1, dtype=F64)]


def assert_resumes(make_optimizer, steps_before: int = 2, steps_after: int = 2) -> None:
    """state_dict saved mid-run and loaded into a fresh optimizer continues exactly as the uninterrupted run."""
    whole = rosenbrock_run(make_optimizer)
    for _ in range(steps_before + steps_after):
        whole.optimizer.step(whole.closure)
    first = rosenbrock_run(make_optimizer)
    for _ in range(steps_before):
        first.optimizer.step(first.closure)
    buffer = io.BytesIO()
    torch.save(first.optimizer.state_dict(), buffer)  # through a checkpoint, as the lab writes it
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    second = make_run(lambda ps: rosenbrock(ps[0]), [p.detach() for p in first.params], make_optimizer)
    second.optimizer.load_state_dict(saved)
    for _ in range(steps_after):
        second.optimizer.step(second.closure)
    torch.testing.assert_close(flat(second.params), flat(whole.params), rtol=0, atol=0)
    assert second.optimizer.state[second.params[0]]["n_iter"] == whole.optimizer.state[whole.params[0]]["n_iter"]


def assert_deepcopy_steps_alike(make_optimizer) -> None:
    """A deep copy of a model and its optimizer (as ``copy.deepcopy((model, opt))``) steps as the original."""
    run = rosenbrock_run(make_optimizer)
    run.optimizer.step(run.closure)
    params, optimizer = copy.deepcopy((run.params, run.optimizer))

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = rosenbrock(params[0])
        loss.backward()
        return loss

    run.optimizer.step(run.closure)
    optimizer.step(closure)
    torch.testing.assert_close(flat(params), flat(run.params), rtol=0, atol=0)
