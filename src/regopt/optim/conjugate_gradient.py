"""Conjugate gradients: linear CG for ``A x = b`` and nonlinear CG as an optimizer (Goodfellow et al. 2016,
sec. 8.6.2, Algorithm 8.9; Nocedal & Wright 2006, Algorithms 5.2 and 5.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from regopt.optim.closure_loop import LineSearch, LineSearchOptimizer, check_int, check_real
from regopt.optim.flat import check
from regopt.optim.line_search import Scalar

__all__ = ["CGResult", "ConjugateGradient", "conjugate_gradient"]

Variant = Literal["polak_ribiere", "fletcher_reeves"]
POWELL_THRESHOLD = 0.2  # restart when |g_k' g_{k-1}| >= 0.2 ||g_k||^2 (Powell 1977; Nocedal & Wright eq. 5.52)


class CGResult(NamedTuple):
    """The solution ``x`` and the number of CG iterations taken."""

    x: Tensor
    iterations: int


def conjugate_gradient(
    a: Tensor | Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    *,
    tol: float = 1e-10,
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

    Args:
        a: the matrix ``A`` (``n x n``), or a function ``v -> A v`` (e.g. a Hessian-vector product).
        b: the right-hand side, a vector of ``n`` elements.
        x0: the starting point (default zeros).
        tol: stop when ``||r_k|| <= tol * ||b||`` (relative residual).
        max_iter: most iterations (default ``10 n``: rounding can need more than ``n``).
        callback: called with a copy of each iterate ``x_{k+1}``.

    Returns:
        :class:`CGResult` ``(x, iterations)``.
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
    if max_iter is not None:
        check_int("max_iter", max_iter, 0)
    max_iter = 10 * b.numel() if max_iter is None else max_iter
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = matvec(x) - b
    p = -r
    rr = r.dot(r)
    threshold = tol * float(b.norm())
    k = 0
    while k < max_iter and float(rr.sqrt()) > threshold:
        ap = matvec(p)
        alpha = rr / p.dot(ap)
        x = x + alpha * p
        r = r + alpha * ap
        rr_next = r.dot(r)
        p = -r + (rr_next / rr) * p
        rr = rr_next
        k += 1
        if callback is not None:
            callback(x.clone())
    return CGResult(x, k)


class ConjugateGradient(LineSearchOptimizer):
    r"""Nonlinear conjugate gradients with a strong Wolfe line search and restarts (the book's Algorithm 8.9).

    Each direction is the steepest descent direction plus a multiple of the last one, so that on a quadratic
    successive directions are conjugate (``d_k' H d_{k-1} = 0``) and a minimization along one is not undone by
    the next::

        d_k = -g_k + beta_k d_{k-1}
        beta_k = g_k' g_k / g_{k-1}' g_{k-1}                          (Fletcher-Reeves)
        beta_k = max(0, g_k' (g_k - g_{k-1}) / g_{k-1}' g_{k-1})      (Polak-Ribiere, "PR+")
        t_k: strong Wolfe line search (c1 = 1e-4, c2 = 0.1)
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
        max_iter, max_eval, tolerance_grad, tolerance_change: see
            :class:`~regopt.optim.closure_loop.LineSearchOptimizer` (torch's LBFGS defaults).

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 8.6.2, Algorithm 8.9.
        Hestenes & Stiefel (1952); Fletcher & Reeves (1964); Polak & Ribiere (1969); Powell (1977), Restart
        procedures for the conjugate gradient method. Nocedal & Wright (2006), sec. 5.2, Algorithm 5.4.
    """

    c2 = 0.1  # c2 < 1/2 makes every Fletcher-Reeves direction a descent direction (N&W Lemma 5.6)

    def __init__(
        self,
        params: Any,
        variant: Variant = "polak_ribiere",
        restart: int | None = None,
        lr: float = 1.0,
        line_search: str | LineSearch | None = "strong_wolfe",
        *,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> None:
        check(
            "variant",
            variant,
            variant in ("polak_ribiere", "fletcher_reeves"),
            "must be 'polak_ribiere' or 'fletcher_reeves'",
        )
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
