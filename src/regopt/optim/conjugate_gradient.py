"""Conjugate gradients: linear CG for ``A x = b`` and nonlinear CG as an optimizer (Goodfellow et al. 2016,
sec. 8.6.2, Algorithm 8.9; Nocedal & Wright 2006, Algorithms 5.2 and 5.4)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from regopt.optim.checks import check_choice, check_int, check_real
from regopt.optim.closure_loop import LineSearch, LineSearchOptimizer
from regopt.optim.line_search import Scalar

__all__ = ["CGResult", "CGRun", "ConjugateGradient", "conjugate_gradient", "linear_cg"]

Variant = Literal["polak_ribiere", "fletcher_reeves"]
POWELL_THRESHOLD = 0.2  # restart when |g_k' g_{k-1}| >= 0.2 ||g_k||^2 (Powell 1977; Nocedal & Wright eq. 5.52)


class CGResult(NamedTuple):
    """The solution ``x`` and the number of CG iterations taken."""

    x: Tensor
    iterations: int


@dataclass
class CGRun:
    """What :func:`linear_cg` ends with: the iterate ``x``, its residual ``A x - b``, the iterations taken, and
    whether it stopped on a direction of non-positive curvature."""

    x: Tensor
    residual: Tensor
    iterations: int
    nonpositive_curvature: bool


def linear_cg(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor,
    *,
    atol: float,
    max_iter: int,
    callback: Callable[[Tensor], None] | None = None,
) -> CGRun:
    """The linear CG recurrence of :func:`conjugate_gradient` (see there), without its argument checks: from
    ``x0`` until ``||r_k|| <= atol``, after ``max_iter`` iterations, or at a direction ``p_k`` of non-positive
    curvature ``p_k' A p_k <= 0`` (never met for a positive definite ``A``; then ``x_k``, the iterate so far, is
    returned: truncated Newton's rule, Nocedal & Wright 2006, Algorithm 7.1). ``x0 = 0`` costs no product
    (``r_0 = -b``). The scalars are Python floats (float64 whatever the dtype of ``b``)."""
    x = x0.clone()
    r = matvec(x) - b if bool(x.any()) else -b
    p, rr = -r, float(r @ r)
    k = 0
    while k < max_iter and math.sqrt(rr) > atol:
        ap = matvec(p)
        curvature = float(p @ ap)
        if not curvature > 0:
            return CGRun(x, r, k, nonpositive_curvature=True)
        alpha = rr / curvature
        x.add_(p, alpha=alpha)  # x_{k+1} = x_k + alpha_k p_k
        r = r.add(ap, alpha=alpha)  # r_{k+1} = r_k + alpha_k A p_k
        rr_next = float(r @ r)
        p = (rr_next / rr) * p - r  # p_{k+1} = -r_{k+1} + beta_{k+1} p_k
        rr = rr_next
        k += 1
        if callback is not None:
            callback(x.clone())
    return CGRun(x, r, k, nonpositive_curvature=False)


def conjugate_gradient(
    a: Tensor | Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    *,
    tol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int | None = None,
    callback: Callable[[Tensor], None] | None = None,
) -> CGResult:
    """Solve ``A x = b`` for symmetric positive definite ``A`` by linear CG (Nocedal & Wright 2006, Alg. 5.2).

    The recurrence, with the residual ``r = A x - b`` (the gradient of ``1/2 x'Ax - b'x``)::

        r_0 = A x_0 - b,  p_0 = -r_0
        alpha_k = r_k' r_k / p_k' A p_k
        x_{k+1} = x_k + alpha_k p_k
        r_{k+1} = r_k + alpha_k A p_k
        beta_{k+1} = r_{k+1}' r_{k+1} / r_k' r_k
        p_{k+1} = -r_{k+1} + beta_{k+1} p_k

    In exact arithmetic it terminates in at most ``n`` iterations (at most the number of distinct eigenvalues).
    Should ``A`` not be positive definite, it stops at the first ``p_k' A p_k <= 0`` with ``x_k`` (truncated
    Newton's rule; :class:`~regopt.optim.hessian_free.HessianFree` solves its damped systems so, through
    :func:`linear_cg`).

    Args:
        a: the matrix ``A`` (``n x n``), or a function ``v -> A v`` (e.g. a Hessian-vector product).
        b: the right-hand side, a vector of ``n`` elements.
        x0: the starting point (default zeros).
        tol: stop when ``||r_k|| <= max(tol * ||b||, atol)`` (relative residual)...
        atol: ... or below this absolute residual (default ``0``).
        max_iter: most iterations (default ``10 n``: rounding can need more than ``n``).
        callback: called with a copy of each iterate ``x_{k+1}``.

    Returns:
        :class:`CGResult` ``(x, iterations)``.

    Example:
        >>> a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> x, iterations = conjugate_gradient(a, torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> [round(v, 12) for v in x.tolist()], iterations  # (1/11, 7/11), in n = 2 iterations
        ([0.090909090909, 0.636363636364], 2)
    """
    if b.dim() != 1:
        raise ValueError(f"b must be a vector, got shape {tuple(b.shape)}")
    if isinstance(a, Tensor):
        if a.shape != (b.numel(), b.numel()):
            raise ValueError(f"a must be a {b.numel()} x {b.numel()} matrix to match b, got shape {tuple(a.shape)}")
        matrix = a
        matvec: Callable[[Tensor], Tensor] = lambda v: matrix @ v  # noqa: E731
    elif callable(a):
        matvec = a
    else:
        raise ValueError(f"a must be a matrix or a callable v -> A v, got {type(a).__name__}")
    check_real("tol", tol)
    check_real("atol", atol)
    if max_iter is not None:
        check_int("max_iter", max_iter, 0)
    max_iter = 10 * b.numel() if max_iter is None else max_iter
    start = torch.zeros_like(b) if x0 is None else x0
    run = linear_cg(matvec, b, start, atol=max(tol * float(b.norm()), atol), max_iter=max_iter, callback=callback)
    return CGResult(run.x, run.iterations)


class ConjugateGradient(LineSearchOptimizer):
    r"""Nonlinear conjugate gradients with a strong Wolfe line search and restarts (the book's Algorithm 8.9).

    Each direction is the steepest descent direction plus a multiple of the last one, so that on a quadratic
    successive directions are conjugate (``d_k' H d_{k-1} = 0``) and a minimization along one is not undone by
    the next::

        d_k = -g_k + beta_k d_{k-1}
        beta_k = g_k' g_k / g_{k-1}' g_{k-1}                          (Fletcher-Reeves)
        beta_k = max(0, g_k' (g_k - g_{k-1}) / g_{k-1}' g_{k-1})      (Polak-Ribiere, "PR+")
        t_k: strong Wolfe line search (c1 = 1e-4, c2 = 0.1 by default)
        x_{k+1} = x_k + t_k d_k

    The method restarts (``d_k = -g_k``) every ``restart`` iterations, when conjugacy is lost (Powell's test
    ``|g_k' g_{k-1}| >= 0.2 ||g_k||^2``), and when ``d_k`` is not a descent direction (``g_k' d_k >= 0``). On a
    quadratic with exact line searches either variant gives linear CG's iterates (:func:`conjugate_gradient`).
    The first trial step of each line search is ``t_{k-1} g_{k-1}'d_{k-1} / g_k'd_k`` (Nocedal & Wright eq. 3.60);
    the very first is torch's ``min(1, 1/||g||_1) lr``.

    Step semantics are ``torch.optim.LBFGS``'s: one ``step(closure)`` runs up to ``max_iter`` iterations (and
    about ``max_eval`` closure calls) and returns the loss at its starting point.

    Args:
        params: the parameters (one group).
        variant: ``"polak_ribiere"`` (default, PR+) or ``"fletcher_reeves"``.
        restart: restart every this many iterations (default ``None``: the number of parameters ``n``).
        lr: scales the first trial step; the fixed step when ``line_search=None``.
        line_search: ``"strong_wolfe"``, ``None`` (fixed step ``lr``) or a callable (see
            :data:`~regopt.optim.closure_loop.LineSearch`).
        c1, c2: the strong Wolfe constants, ``0 < c1 < c2 < 1`` (default ``1e-4, 0.1``: ``c2 < 1/2`` makes every
            Fletcher-Reeves direction a descent direction, Nocedal & Wright Lemma 5.6; quasi-Newton methods use
            ``c2 = 0.9``).
        max_iter, max_eval, tolerance_grad, tolerance_change: see
            :class:`~regopt.optim.closure_loop.LineSearchOptimizer` (torch's LBFGS defaults).

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 8.6.2, Algorithm 8.9.
        Hestenes & Stiefel (1952); Fletcher & Reeves (1964); Polak & Ribiere (1969); Powell (1977), Restart
        procedures for the conjugate gradient method. Nocedal & Wright (2006), sec. 5.2, Algorithm 5.4.
    """

    def __init__(
        self,
        params: Any,
        variant: Variant = "polak_ribiere",
        restart: int | None = None,
        lr: float = 1.0,
        line_search: str | LineSearch | None = "strong_wolfe",
        *,
        c1: float = 1e-4,
        c2: float = 0.1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> None:
        check_choice("variant", variant, ("polak_ribiere", "fletcher_reeves"))
        if restart is not None:
            check_int("restart", restart, 1)
        super().__init__(
            params,
            lr,
            max_iter,
            max_eval,
            tolerance_grad,
            tolerance_change,
            line_search,
            c1,
            c2,
            variant=variant,
            restart=restart,
        )

    def _direction(self, state: dict[str, Any], g: Tensor) -> Tensor:
        group = self.param_groups[0]
        restart = group["restart"] if group["restart"] is not None else g.numel()
        if state["n_iter"] > 1:
            since = state["since_restart"] + 1
            prev_g, prev_d = state["prev_flat_grad"], state["d"]
            gg, prev_gg = float(g.dot(g)), float(prev_g.dot(prev_g))
            if since < restart and abs(float(g.dot(prev_g))) < POWELL_THRESHOLD * gg:
                if group["variant"] == "fletcher_reeves":
                    beta = gg / prev_gg
                else:
                    beta = max(0.0, (gg - float(g.dot(prev_g))) / prev_gg)
                d = prev_d.mul(beta).sub_(g)
                if float(g.dot(d)) < 0:
                    state["since_restart"] = since
                    return d
        state["since_restart"] = 0
        return g.neg()

    def _initial_step(self, state: dict[str, Any], g: Tensor, gtd: Tensor, lr: float) -> Scalar:
        if state["n_iter"] == 1 or self.line_search is None:
            return super()._initial_step(state, g, gtd, lr)
        return state["t"] * state["gtd"] / gtd  # eq. (3.60): the same first-order change as the last step
