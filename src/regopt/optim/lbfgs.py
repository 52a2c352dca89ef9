"""Limited-memory BFGS (Goodfellow et al. 2016, sec. 8.6.3; Nocedal & Wright 2006, Algorithms 7.4-7.5)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from regopt.optim.checks import check_int
from regopt.optim.closure_loop import LineSearch, LineSearchOptimizer
from regopt.optim.line_search import Scalar

__all__ = ["LBFGS", "two_loop"]


def two_loop(g: Tensor, s: list[Tensor], y: list[Tensor], rho: list[Scalar], gamma: Scalar) -> Tensor:
    """``-H_k g`` by the two-loop recursion (Nocedal & Wright 2006, Algorithm 7.4), ``H_k`` the BFGS update of
    ``H_k^0 = gamma I`` by the pairs ``(s_i, y_i)``, oldest first, ``rho_i = 1 / y_i' s_i``::

        q <- g;  for i = k-1, ..., k-m:  a_i <- rho_i s_i' q;  q <- q - a_i y_i
        r <- gamma q;  for i = k-m, ..., k-1:  b <- rho_i y_i' r;  r <- r + s_i (a_i - b)
        return -r

    The scalars stay 0-dim tensors of the parameters' dtype, as in torch's LBFGS, so both round alike.
    """
    q = g.neg()  # the recursion run on -g gives -H g directly, as torch
    alphas: list[Tensor] = [g.new_zeros(())] * len(s)
    for i in range(len(s) - 1, -1, -1):
        alphas[i] = s[i].dot(q) * rho[i]
        q.add_(y[i], alpha=-float(alphas[i]))
    r = torch.mul(q, gamma)
    for i in range(len(s)):
        beta = y[i].dot(r) * rho[i]
        r.add_(s[i], alpha=float(alphas[i] - beta))
    return r


class LBFGS(LineSearchOptimizer):
    r"""L-BFGS: a quasi-Newton direction from the last ``history`` steps, a drop-in for ``torch.optim.LBFGS``.

    BFGS (:class:`regopt.optim.BFGS`) keeps an ``n x n`` inverse-Hessian approximation; L-BFGS keeps only the
    last ``m`` pairs ``s_i = x_{i+1} - x_i``, ``y_i = g_{i+1} - g_i`` and applies the BFGS update of
    ``H^0 = gamma_k I`` to ``g`` without forming it (the two-loop recursion, :func:`two_loop`)::

        gamma_k = s_{k-1}' y_{k-1} / y_{k-1}' y_{k-1}         (Nocedal & Wright 2006, eq. 7.20)
        d_k = -H_k g_k                                        (two-loop recursion, Algorithm 7.4)
        t_k: strong Wolfe line search from t = lr             (Algorithm 3.5)
        x_{k+1} = x_k + t_k d_k

    memory ``O(m n)`` instead of ``O(n^2)``. A pair is stored only when ``y' s > 1e-10`` (the curvature
    condition, which the Wolfe conditions guarantee in exact arithmetic).

    Step semantics are torch's: one ``step(closure)`` runs up to ``max_iter`` iterations (and about ``max_eval``
    closure calls), so the same loop works with either class; the iterates, the line search and the stopping
    tests coincide with ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` in float64 (the tests check it).
    Differences: the arguments are named ``history`` (torch: ``history_size``, default 100) and ``line_search``
    (torch: ``line_search_fn``, default ``None``); the defaults here are the textbook's, ``history=10`` and the
    strong Wolfe search.

    Args:
        params: the parameters (one group).
        lr: first trial step of each line search (1: the quasi-Newton step); the fixed step without search.
        history: the number ``m >= 1`` of pairs kept.
        c1, c2: the strong Wolfe constants, ``0 < c1 < c2 < 1`` (default ``1e-4, 0.9``, torch's).
        max_iter, max_eval, tolerance_grad, tolerance_change, line_search: see
            :class:`~regopt.optim.closure_loop.LineSearchOptimizer` (same meaning and defaults as torch).

    Example:
        >>> import torch
        >>> x = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = LBFGS([x], max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-15)  # run to the minimum
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)
        >>> bool((x - 1).abs().max() < 1e-6)
        True

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 8.6.3.
        Nocedal, J. (1980). Updating quasi-Newton matrices with limited storage. Math. Comp. 35(151).
        Liu, D. C. & Nocedal, J. (1989). On the limited memory BFGS method for large scale optimization.
        Nocedal & Wright (2006), Numerical Optimization, 2nd ed., sec. 7.2.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        history: int = 10,
        line_search: str | LineSearch | None = "strong_wolfe",
        *,
        c1: float = 1e-4,
        c2: float = 0.9,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> None:
        check_int("history", history, 1)
        super().__init__(
            params, lr, max_iter, max_eval, tolerance_grad, tolerance_change, line_search, c1, c2, history=history
        )

    def _direction(self, state: dict[str, Any], g: Tensor) -> Tensor:
        if state["n_iter"] == 1:
            state.update(old_dirs=[], old_stps=[], ro=[], H_diag=1.0)
            return g.neg()
        # remember the last pair (as torch: here, at the next direction, with the gradient of this step())
        y = g.sub(state["prev_flat_grad"])
        s = state["d"].mul(state["t"])
        ys = y.dot(s)
        if ys > 1e-10:
            if len(state["old_dirs"]) == self.param_groups[0]["history"]:
                for key in ("old_dirs", "old_stps", "ro"):
                    state[key].pop(0)
            state["old_dirs"].append(y)
            state["old_stps"].append(s)
            state["ro"].append(1.0 / ys)
            state["H_diag"] = ys / y.dot(y)  # gamma_k, eq. (7.20)
        return two_loop(g, state["old_stps"], state["old_dirs"], state["ro"], state["H_diag"])
