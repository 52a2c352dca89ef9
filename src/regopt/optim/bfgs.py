"""BFGS with a dense inverse-Hessian approximation (Goodfellow et al. 2016, sec. 8.6.3; Nocedal & Wright 2006,
Algorithm 6.1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from regopt.optim.checks import check_int
from regopt.optim.closure_loop import LineSearch, LineSearchOptimizer

__all__ = ["BFGS", "MAX_PARAMETERS"]

MAX_PARAMETERS = 4096
"""Default limit on the parameter count: the ``n x n`` matrix then takes at most 128 MiB in float64."""


def bfgs_update(h: Tensor, s: Tensor, y: Tensor) -> Tensor:
    """``H+ = (I - rho s y') H (I - rho y s') + rho s s'`` with ``rho = 1 / y's`` (Nocedal & Wright 2006, eq. 6.17),
    expanded for a symmetric ``H``: ``H - rho (s (Hy)' + (Hy) s') + (rho^2 y'Hy + rho) s s'``."""
    rho = 1.0 / float(y.dot(s))
    hy = h @ y
    scale = rho * rho * float(y.dot(hy)) + rho
    return h - rho * (torch.outer(s, hy) + torch.outer(hy, s)) + scale * torch.outer(s, s)


class BFGS(LineSearchOptimizer):
    r"""BFGS: Newton's step with ``H^{-1}`` replaced by an approximation ``M_k`` built from gradient changes.

    The book's sec. 8.6.3 ("Broyden-Fletcher-Goldfarb-Shanno"): instead of inverting the Hessian, keep an
    approximation ``M_k ~ H^{-1}`` refined by each step's curvature information::

        d_k = -M_k g_k                                             (search direction)
        t_k: strong Wolfe line search from t = lr                  (Algorithm 3.5)
        s_k = t_k d_k,  y_k = g_{k+1} - g_k,  rho_k = 1 / y_k' s_k
        M_0 <- (y_0' s_0 / y_0' y_0) I before the first update      (Nocedal & Wright eq. 6.20)
        M_{k+1} = (I - rho_k s_k y_k') M_k (I - rho_k y_k s_k') + rho_k s_k s_k'      (eq. 6.17)

    ``M_0 = I``, so the first step is steepest descent. The update is skipped unless ``y' s > 1e-10`` (the
    curvature condition that keeps ``M`` positive definite; the Wolfe conditions guarantee it in exact
    arithmetic). On a quadratic with exact line searches ``M_n = H^{-1}`` after ``n`` steps. ``M`` is the dense
    ``n x n`` matrix ``self.state[first parameter]["H"]``, so the class refuses models above ``max_params``
    parameters: use :class:`regopt.optim.LBFGS` there.

    Step semantics are ``torch.optim.LBFGS``'s: one ``step(closure)`` runs up to ``max_iter`` iterations (and
    about ``max_eval`` closure calls) and returns the loss at its starting point.

    Args:
        params: the parameters (one group), at most ``max_params`` elements in all.
        lr: first trial step of each line search (scaled by ``min(1, 1/||g||_1)`` on the very first iteration).
        line_search: ``"strong_wolfe"``, ``None`` (fixed step ``lr``) or a callable.
        c1, c2: the strong Wolfe constants, ``0 < c1 < c2 < 1`` (default ``1e-4, 0.9``, the quasi-Newton choice).
        max_params: the parameter limit (default :data:`MAX_PARAMETERS`).
        max_iter, max_eval, tolerance_grad, tolerance_change: see
            :class:`~regopt.optim.closure_loop.LineSearchOptimizer` (torch's LBFGS defaults).

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 8.6.3.
        Broyden (1970); Fletcher (1970); Goldfarb (1970); Shanno (1970).
        Nocedal & Wright (2006), Numerical Optimization, 2nd ed., sec. 6.1, Algorithm 6.1.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        line_search: str | LineSearch | None = "strong_wolfe",
        *,
        c1: float = 1e-4,
        c2: float = 0.9,
        max_params: int = MAX_PARAMETERS,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
    ) -> None:
        check_int("max_params", max_params, 1)
        super().__init__(params, lr, max_iter, max_eval, tolerance_grad, tolerance_change, line_search, c1, c2)
        count = sum(p.numel() for p in self._params)
        if count > max_params:
            raise ValueError(
                f"BFGS keeps a dense n x n inverse Hessian: {count} parameters exceed the limit of max_params="
                f"{max_params}; use LBFGS for larger models"
            )

    def _direction(self, state: dict[str, Any], g: Tensor) -> Tensor:
        if "H" not in state:
            state["H"] = torch.eye(g.numel(), dtype=g.dtype, device=g.device)
            state["updates"] = 0
        return -(state["H"] @ g)

    def _update(self, state: dict[str, Any], s: Tensor, y: Tensor) -> None:
        ys = float(y.dot(s))
        if ys <= 1e-10:
            return
        if state["updates"] == 0:
            state["H"] = state["H"] * (ys / float(y.dot(y)))
        state["H"] = bfgs_update(state["H"], s, y)
        state["updates"] += 1
