"""Small float64 problems whose parameters are several tensors: a quadratic and a tiny MLP regression."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Problem:
    """``loss(tensors)`` over parameters of the given shapes, started at ``init``."""

    name: str
    shapes: list[tuple[int, ...]]
    init: Tensor
    loss: Callable[[list[Tensor]], Tensor]

    def split(self, theta: Tensor) -> list[Tensor]:
        sizes = [int(torch.tensor(s).prod()) if s else 1 for s in self.shapes]
        return [chunk.reshape(shape) for chunk, shape in zip(theta.split(sizes), self.shapes, strict=True)]

    def grad(self, theta: Tensor) -> Tensor:
        """Gradient of the loss at a flat theta (for the reference transcriptions)."""
        theta = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(self.loss(self.split(theta)), theta)
        return g

    def parameters(self) -> list[torch.nn.Parameter]:
        return [torch.nn.Parameter(t.clone()) for t in self.split(self.init)]


def quadratic() -> Problem:
    """f(theta) = 1/2 theta' A theta - b' theta, A symmetric positive definite with condition number 10."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(7, 7, generator=gen, dtype=torch.float64))
    a = q @ torch.diag(torch.linspace(0.1, 1.0, 7, dtype=torch.float64)) @ q.T
    b = torch.randn(7, generator=gen, dtype=torch.float64)
    shapes = [(3,), (2, 2)]

    def loss(tensors: list[Tensor]) -> Tensor:
        theta = torch.cat([t.reshape(-1) for t in tensors])
        return 0.5 * theta @ a @ theta - b @ theta

    return Problem("quadratic", shapes, torch.randn(7, generator=gen, dtype=torch.float64), loss)


def mlp(order: Tensor | None = None) -> Problem:
    """A 3-5-1 tanh MLP regressing a fixed batch (weights and biases as four tensors).

    ``order`` permutes the batch's rows: the same loss, its sums taken in another order (as another BLAS or
    vector width would), so its gradients differ from the plain problem's in the last bits only."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    if order is not None:
        x, y = x[order], y[order]
    shapes = [(5, 3), (5,), (1, 5), (1,)]

    def loss(tensors: list[Tensor]) -> Tensor:
        w1, b1, w2, b2 = tensors
        return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()

    return Problem("mlp", shapes, 0.5 * torch.randn(26, generator=gen, dtype=torch.float64), loss)


def run_of(
    problem: Problem, make_optimizer, steps: int, lr: Callable[[int], float] | None = None
) -> Callable[[Tensor, Callable[[Tensor], Tensor]], Tensor]:
    """``run(init, perturb)``: train from a flat ``init`` with every gradient passed through ``perturb`` before
    the step (the form tests/optim/tolerance.py measures a reference's rounding drift in); ``lr(k)`` if given is
    set before step k. Returns the flat final parameters."""

    def run(init: Tensor, perturb: Callable[[Tensor], Tensor]) -> Tensor:
        params = [torch.nn.Parameter(t.clone()) for t in problem.split(init)]
        optimizer = make_optimizer(params)
        for k in range(steps):
            if lr is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr(k)
            optimizer.zero_grad()
            problem.loss(params).backward()
            for p in params:
                p.grad = perturb(p.grad)
            optimizer.step()
        return torch.cat([p.detach().reshape(-1) for p in params])

    return run


def train(problem: Problem, make_optimizer, lr: Callable[[int], float], steps: int) -> Tensor:
    """Run an optimizer on the problem, setting each group's lr to ``lr(k)`` before step k; flat parameters."""
    params = problem.parameters()
    optimizer = make_optimizer(params)
    for k in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr(k)
        optimizer.zero_grad()
        problem.loss(params).backward()
        optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in params])
