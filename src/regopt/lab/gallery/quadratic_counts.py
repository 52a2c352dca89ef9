"""Iterations to solve an ill-conditioned quadratic, per method, for the gallery entry ``second_order``.

The problem (Goodfellow et al. 2016, sec. 8.2.1 and 8.6): ``f(x) = 1/2 (x - x*)' A (x - x*)`` in float64, ``A =
Q diag(lambda) Q'`` with ``n`` eigenvalues log-spaced in ``[1, kappa]`` and a random rotation ``Q``, from ``x0 = 0``
to ``f(x_k) < eps f(x0)``. Each method counts what it calls an iteration:

* gradient descent and heavy-ball momentum: one update (one gradient, i.e. one product ``A v``);
* linear CG (:func:`~regopt.optim.conjugate_gradient` on ``A x = A x*``): one CG iteration (one ``A v``);
* BFGS / L-BFGS: one quasi-Newton update (a line search plus one update of the curvature memory), run as
  ``step(closure)`` with ``max_iter=1`` so that ``f`` can be read after each; the closure evaluations are those
  one long ``step`` would make (each ``step`` re-evaluates its starting point, counted once);
* Newton: one step (one closure call and the ``n x n`` Hessian from ``n`` Hessian rows).

The theory lines bound ``||x_k - x*||_A`` (so ``f`` ratio = its square; ``delta = sqrt(eps)``): gradient descent at
``lr = 2/(L + mu)`` contracts it by ``(kappa - 1)/(kappa + 1)`` per step, ``k = ln(1/delta) / ln((kappa + 1)/(kappa
- 1)) ~ kappa ln(1/delta)/2``; CG by ``2 ((sqrt(kappa) - 1)/(sqrt(kappa) + 1))^k``, ``k ~ sqrt(kappa) ln(2/delta)/2``
(heavy ball at its optimal parameters has the same rate, Polyak 1964); Newton is exact in one step.

References:
    Nocedal & Wright (2006), Numerical Optimization, eq. (3.29) and (5.36). Polyak (1964), Some methods of
    speeding up the convergence of iteration methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

METHODS = ("gradient descent", "heavy ball", "CG", "BFGS", "L-BFGS", "Newton")
"""The methods, in the table's order."""


@dataclass(frozen=True)
class Quadratic:
    """``f(x) = 1/2 (x - x*)' A (x - x*)`` with ``A``'s eigenvalues ``lam`` (ascending)."""

    a: Tensor
    x_star: Tensor
    lam: Tensor

    def f(self, x: Tensor) -> float:
        e = x - self.x_star
        return 0.5 * float(e @ (self.a @ e))


@dataclass(frozen=True)
class Count:
    """Iterations to reach the tolerance (``None``: not within the cap) and gradient evaluations (products
    ``A v`` or closure calls) they took."""

    iterations: int | None
    evaluations: int


def quadratic(kappa: float, n: int, seed: int) -> Quadratic:
    """A random rotation of ``diag(logspace(1, kappa, n))`` and a random minimizer ``x*`` (float64, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    lam = torch.logspace(0.0, math.log10(kappa), n, dtype=torch.float64)
    a = (q * lam) @ q.T
    return Quadratic(0.5 * (a + a.T), torch.randn(n, generator=gen, dtype=torch.float64), lam)


def theory(kappa: float, eps: float) -> dict[str, float]:
    """The iteration bounds of the module docstring for ``f`` ratio ``eps``."""
    delta, root = math.sqrt(eps), math.sqrt(kappa)
    return {
        "gradient descent": math.log(1 / delta) / math.log((kappa + 1) / (kappa - 1)),
        "CG": math.log(2 / delta) / math.log((root + 1) / (root - 1)),
        "Newton": 1.0,
    }


def _first_order(p: Quadratic, eps: float, cap: int, lr: float, beta: float) -> Count:
    """x_{k+1} = x_k - lr grad f(x_k) + beta (x_k - x_{k-1}) (gradient descent: beta = 0)."""
    x = torch.zeros_like(p.x_star)
    previous = x
    e = x - p.x_star
    g = p.a @ e
    target = eps * 0.5 * float(e @ g)
    for k in range(1, cap + 1):
        x, previous = x - lr * g + beta * (x - previous), x
        e = x - p.x_star
        g = p.a @ e
        if 0.5 * float(e @ g) < target:
            return Count(k, k + 1)
    return Count(None, cap + 1)


def gradient_descent(p: Quadratic, eps: float, cap: int) -> Count:
    """Gradient descent at its best fixed lr ``2/(L + mu)``."""
    big, small = float(p.lam[-1]), float(p.lam[0])
    return _first_order(p, eps, cap, 2 / (big + small), 0.0)


def heavy_ball(p: Quadratic, eps: float, cap: int) -> Count:
    """Heavy ball at its optimal ``lr = 4/(sqrt(L) + sqrt(mu))^2``, ``beta = ((sqrt(L) - sqrt(mu))/(sqrt(L) +
    sqrt(mu)))^2`` (Polyak 1964); ``torch.optim.SGD(lr, momentum=beta)`` takes the same steps."""
    big, small = math.sqrt(float(p.lam[-1])), math.sqrt(float(p.lam[0]))
    return _first_order(p, eps, cap, 4 / (big + small) ** 2, ((big - small) / (big + small)) ** 2)


def linear_cg(p: Quadratic, eps: float, cap: int) -> Count:
    """Linear CG on ``A x = A x*`` from 0; the iteration whose iterate first meets the tolerance."""
    from regopt.optim import conjugate_gradient

    values: list[float] = []
    target = eps * p.f(torch.zeros_like(p.x_star))
    conjugate_gradient(p.a, p.a @ p.x_star, tol=1e-15, max_iter=cap, callback=lambda x: values.append(p.f(x)))
    k = next((i + 1 for i, v in enumerate(values) if v < target), None)
    return Count(k, (len(values) if k is None else k) + 1)


def closure_method(p: Quadratic, eps: float, cap: int, make: Callable[[list[Tensor]], torch.optim.Optimizer]) -> Count:
    """Run ``make([x])`` one ``step`` (= one iteration for ``max_iter=1``) at a time; closure evaluations as one
    long ``step`` would count them (each ``step`` after the first re-evaluates its start: ``- (steps - 1)``)."""
    x = torch.zeros_like(p.x_star).requires_grad_()
    optimizer = make([x])
    newton = type(optimizer).__name__ == "Newton"

    def closure() -> Any:  # the loss tensor (torch's stubs say float)
        optimizer.zero_grad()
        e = x - p.x_star
        loss = 0.5 * e @ (p.a @ e)
        if not newton:  # Newton differentiates the returned loss itself
            loss.backward()
        return loss

    target = eps * p.f(x.detach())
    for k in range(1, cap + 1):
        optimizer.step(closure)
        if p.f(x.detach()) < target:
            return Count(k, int(optimizer.state[x]["func_evals"]) - (k - 1))
    return Count(None, int(optimizer.state[x]["func_evals"]) - (cap - 1))


def count_all(p: Quadratic, eps: float, cap: int, quasi_newton_cap: int) -> dict[str, Count]:
    """Every method of :data:`METHODS` on ``p``."""
    from regopt.optim import BFGS, LBFGS, Newton

    def bfgs(x: list[Tensor]) -> torch.optim.Optimizer:
        return BFGS(x, max_iter=1, max_eval=25, tolerance_grad=0.0, tolerance_change=0.0)

    def lbfgs(x: list[Tensor]) -> torch.optim.Optimizer:
        return LBFGS(x, history=10, max_iter=1, max_eval=25, tolerance_grad=0.0, tolerance_change=0.0)

    return {
        "gradient descent": gradient_descent(p, eps, cap),
        "heavy ball": heavy_ball(p, eps, cap),
        "CG": linear_cg(p, eps, cap),
        "BFGS": closure_method(p, eps, quasi_newton_cap, bfgs),
        "L-BFGS": closure_method(p, eps, quasi_newton_cap, lbfgs),
        "Newton": closure_method(p, eps, 1, lambda x: Newton(x)),
    }
