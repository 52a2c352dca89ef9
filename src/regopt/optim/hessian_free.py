r"""Hessian-free optimization (Martens 2010): truncated Newton-CG on curvature-vector products only."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from regopt.optim.checks import check_choice, check_int, check_real
from regopt.optim.conjugate_gradient import linear_cg
from regopt.optim.flat_vector import flat_params, flatten, set_flat_, set_grad_, single_group_params, unflatten
from regopt.optim.newton import closure_value

__all__ = ["HessianFree"]

Products = Callable[[Tensor], Tensor]


def _split(result: Any, curvature: str) -> tuple[Tensor, Tensor | None]:
    """The closure's ``loss`` and ``output`` (``None`` when it returned the loss alone)."""
    loss, output = (result[0], result[1]) if isinstance(result, tuple) and len(result) == 2 else (result, None)
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        raise ValueError(f"HessianFree's closure must return the scalar loss as a tensor, got {type(loss).__name__}")
    if not loss.requires_grad:
        raise ValueError(
            "HessianFree's closure returned a loss without a graph: compute it from the parameters under grad mode, "
            "and do not call backward() in it (the optimizer differentiates the loss itself)"
        )
    if curvature == "ggn" and not isinstance(output, Tensor):
        raise ValueError(
            "HessianFree(curvature='ggn')'s closure must return (loss, output), the model's output the loss was "
            "computed from (the Gauss-Newton matrix is J' H_L J with J = d output / d params)"
        )
    return loss, output


class HessianFree(Optimizer):
    r"""Hessian-free optimization (Martens 2010): each step solves ``(B + lambda I) d = -g`` by truncated CG.

    ``B`` is the Hessian or the generalized Gauss-Newton matrix ``J' H_L J``, used only through products ``B v``
    (two or three backward passes each, :mod:`regopt.diagnostics.ggn`), never formed: a Newton-type step for
    models far too large for :class:`~regopt.optim.newton.Newton` (Goodfellow et al. 2016, sec. 8.6.1-8.6.2).
    Each :meth:`step`::

        g, (v -> B v) at theta                      (one closure call, graphs kept for the products)
        d = CG on (B + lambda I) d = -g from d0 = warm_start * d_prev (again from 0 if that ends with
            q_lambda(d) = g'd + 1/2 d'(B + lambda I)d >= 0), until ||r|| <= min(cg_tol, sqrt(||g||)) ||g||,
            cg_max_iter products, or p'(B + lambda I)p <= 0;
            d = -g if the first CG direction already has p'(B + lambda I)p <= 0   (N&W Algorithm 7.1)
        s = lr d                                    (lr = 1 by default: Martens' full step)
        q = g's + 1/2 s'B s                         (the model's predicted change; s'Bs from CG's residual)
        rho = (f(theta + s) - f(theta)) / q         (one more closure call, without a graph)
        lambda <- 3/2 lambda if rho < 1/4 (or NaN);  2/3 lambda if rho > 3/4      (Levenberg-Marquardt)
        theta <- theta + s if f(theta + s) < f(theta), else theta unchanged

    The forcing term ``min(cg_tol, sqrt(||g||))`` makes CG exact enough near a minimum for superlinear convergence
    (Nocedal & Wright 2006, Theorem 7.2) while truncating it early far from one. On an indefinite Hessian CG stops
    at the first direction of negative curvature; a rejected step raises ``lambda`` until ``B + lambda I`` is
    positive definite where it matters. The Gauss-Newton matrix is positive semi-definite for a loss convex in the
    output, so ``curvature="ggn"`` (Martens' choice) never meets negative curvature.

    The closure is called under ``torch.enable_grad`` and must return, with their graphs (it may call
    ``zero_grad``, not ``backward``): the loss, for ``curvature="hessian"``; ``(loss, output)``, the loss and the
    model output it was computed from, for ``curvature="ggn"``. The gradient is the loss's whole gradient (a
    penalty computed from the parameters directly counts), the Gauss-Newton matrix the curvature through
    ``output`` only (a penalty's curvature, ``alpha I`` for L2, is then left to the damping). After the step each
    parameter's ``.grad`` holds ``g``, the gradient at the point the step started from (one the loss does not use
    keeps its own). The current ``lambda``
    is the param group's ``"damping"`` (adapted in place, saved by ``state_dict``); ``state[first param]`` holds
    ``direction`` (the last CG solution), ``rho`` (the last reduction ratio) and the counts ``func_evals`` (closure
    calls), ``products`` (curvature-vector products) and ``n_iter`` (steps). Each closure call is a fresh
    evaluation: a model in training mode updates its BatchNorm statistics and draws new dropout masks at each one,
    so ``rho`` then compares losses under different masks (train full-batch models without dropout for an exact
    ``rho``).

    Args:
        params: the parameters (one param group).
        curvature: ``"ggn"`` (default) or ``"hessian"``.
        damping: the initial ``lambda > 0`` (default ``1.0``).
        cg_max_iter: at most this many curvature products per step (default ``100``).
        cg_tol: the largest forcing term: CG stops at ``||r|| <= min(cg_tol, sqrt(||g||)) ||g||`` (default ``0.5``).
        warm_start: CG starts from ``warm_start`` times the previous solution (default ``0.95``, Martens' value;
            ``0`` starts from zero).
        lr: scales the step CG found (default ``1``, Martens' full step); a schedule may decay it.

    Example:
        >>> import torch
        >>> xy = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> opt = HessianFree([xy], curvature="ggn")
        >>> def closure():  # Rosenbrock as a sum of squared residuals
        ...     r = torch.stack([1 - xy[0], 10 * (xy[1] - xy[0] ** 2)])
        ...     return (r**2).sum(), r
        >>> for _ in range(60):
        ...     _ = opt.step(closure)
        >>> [round(v, 6) for v in xy.tolist()]
        [1.0, 1.0]

    References:
        Martens, J. (2010). Deep learning via Hessian-free optimization. ICML.
        Martens, J. & Sutskever, I. (2012). Training deep and recurrent networks with Hessian-free optimization.
        In Neural Networks: Tricks of the Trade, 2nd ed., LNCS 7700.
        Nocedal, J. & Wright, S. J. (2006). Numerical Optimization, 2nd ed., sec. 7.1 (inexact Newton, Newton-CG).
        Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.6.
    """

    needs_closure = True
    """``step`` must be given a closure (:func:`regopt.optim.needs_closure`)."""
    differentiates_closure = True
    """The closure returns the loss (and output) with graphs and the optimizer differentiates them
    (:func:`regopt.optim.differentiates_closure`)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        curvature: str = "ggn",
        damping: float = 1.0,
        cg_max_iter: int = 100,
        cg_tol: float = 0.5,
        warm_start: float = 0.95,
        lr: float = 1.0,
    ) -> None:
        check_choice("curvature", curvature, ("ggn", "hessian"))
        check_real("damping", damping, positive=True)
        check_int("cg_max_iter", cg_max_iter, 1)
        check_real("cg_tol", cg_tol, positive=True)
        check_real("warm_start", warm_start, maximum=1)
        check_real("lr", lr, positive=True)
        defaults = {
            "lr": float(lr),
            "curvature": curvature,
            "damping": float(damping),
            "cg_max_iter": cg_max_iter,
            "cg_tol": float(cg_tol),
            "warm_start": float(warm_start),
        }
        super().__init__(params, defaults)
        single_group_params(self, "HessianFree")

    def _products(
        self, result: Any, params: list[Tensor], curvature: str
    ) -> tuple[Tensor, Tensor, Products, list[bool]]:
        """The loss, the flat gradient, ``v -> B v`` on the closure's graph, and which parameters the loss uses."""
        loss, output = _split(result, curvature)
        if curvature == "ggn":
            from regopt.diagnostics.ggn import GaussNewtonProducts  # lazy: regopt.diagnostics imports regopt.optim

            assert output is not None
            ggn = GaussNewtonProducts(loss, output, params)
            gradient = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)  # penalties too
            used = [gr is not None for gr in gradient]
            return loss, flatten(gradient, params), lambda v: flatten(ggn.matvec(unflatten(v, params)), params), used
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        live = [(gr, i) for i, gr in enumerate(grads) if gr is not None and gr.requires_grad]

        def hessian_vector(v: Tensor) -> Tensor:  # Pearlmutter: H v = d(g . v)/dtheta, through g's kept graph
            if not live:
                return torch.zeros_like(v)
            vs = unflatten(v, params)
            outs = [gr for gr, _ in live]
            grad_outputs = [vs[i] for _, i in live]
            hv = torch.autograd.grad(outs, params, grad_outputs=grad_outputs, retain_graph=True, allow_unused=True)
            return flatten(hv, params)

        used = [gr is not None for gr in grads]
        g = flatten((gr.detach() if gr is not None else None for gr in grads), params)
        return loss, g, hessian_vector, used

    def _solve(
        self, closure: Callable[[], Any], params: list[Tensor], group: dict[str, Any], state: dict[str, Any]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[bool]]:
        """Call the closure and run CG on ``(B + lambda I) d = -g``: the loss, ``g``, ``d``, CG's residual
        ``(B + lambda I) d + g``, and which parameters the loss uses."""
        lam = group["damping"]
        with torch.enable_grad():
            result = closure()
            state["func_evals"] += 1
            loss, g, curvature_product, used = self._products(result, params, group["curvature"])

            def damped(v: Tensor) -> Tensor:  # (B + lambda I) v
                state["products"] += 1
                return curvature_product(v) + lam * v

            g_norm = float(torch.linalg.vector_norm(g))
            x0 = group["warm_start"] * state["direction"] if "direction" in state else torch.zeros_like(g)
            tol = min(group["cg_tol"], math.sqrt(g_norm)) * g_norm
            run = linear_cg(damped, -g, x0, atol=tol, max_iter=group["cg_max_iter"])
            if bool(x0.any()) and float(g @ run.x) + 0.5 * float(run.x @ (run.residual - g)) >= 0:
                # the warm start left the damped model no lower than at d = 0: start over from 0
                run = linear_cg(damped, -g, torch.zeros_like(g), atol=tol, max_iter=group["cg_max_iter"])
            if run.nonpositive_curvature and not bool(run.x.any()):  # no CG step taken: steepest descent, as in
                return loss.detach(), g, -g, damped(-g) + g, used  # N&W's Algorithm 7.1 (one more product)
        return loss.detach(), g, run.x, run.residual, used

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Tensor:  # type: ignore[override]
        """One Hessian-free step; ``closure`` (required) as in the class docstring. Returns the loss before it."""
        if closure is None:
            raise ValueError("HessianFree needs a closure that returns the loss (see the class docstring)")
        group = self.param_groups[0]
        params = single_group_params(self, "HessianFree")
        state = self.state[group["params"][0]]
        for key in ("func_evals", "products", "n_iter"):
            state.setdefault(key, torch.tensor(0))
        lam = group["damping"]
        loss, g, d, r, used = self._solve(closure, params, group, state)  # the graphs are freed on return
        state["direction"] = d

        f0, t = float(loss), float(group["lr"])
        dd = float(d @ d)
        # q(t d) = t g'd + t^2/2 d'Bd, with d'(B + lam I)d = d'(r + b), b = -g, from CG's residual r = A d - b
        predicted = t * float(g @ d) + 0.5 * t * t * (float(d @ (r - g)) - lam * dd)
        theta0 = flat_params(params)
        set_flat_(params, theta0 + t * d)
        new = closure()
        state["func_evals"] += 1
        f_new = float(closure_value(new))
        rho = (f_new - f0) / predicted if predicted < 0 else -math.inf
        state["rho"] = torch.tensor(rho, dtype=torch.float64)
        if dd > 0 and not rho >= 0.25:  # also a NaN loss at the trial point
            group["damping"] = lam * 1.5
        elif dd > 0 and rho > 0.75:
            group["damping"] = lam * 2 / 3
        if not f_new < f0:  # reject: back to theta (lambda has grown)
            set_flat_(params, theta0)
        set_grad_(params, g, used)
        state["n_iter"] += 1
        return loss
