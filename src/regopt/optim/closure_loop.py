"""The iteration loop shared by the line-search methods (conjugate gradients, BFGS, L-BFGS).

Each iteration of these methods is the same four lines, only the direction differs (Nocedal & Wright 2006,
ch. 3)::

    d_k = direction(g_k, memory)                     (-g for steepest descent, -H_k g_k for quasi-Newton, ...)
    t_k = line search along d_k from x_k             (strong Wolfe, or the fixed step lr)
    x_{k+1} = x_k + t_k d_k
    memory <- update(s_k = t_k d_k, y_k = g_{k+1} - g_k)

:class:`LineSearchOptimizer` runs that loop over the parameters flattened into one vector, with the step
semantics of ``torch.optim.LBFGS``: one ``step(closure)`` runs up to ``max_iter`` iterations and at most about
``max_eval`` closure calls, and stops early when the gradient, the step or the loss change falls below its
tolerance. A subclass supplies :meth:`~LineSearchOptimizer._direction` (and optionally ``_initial_step`` and
``_update``). All state sits in ``self.state[first parameter]`` (as torch's LBFGS), so ``state_dict`` round-trips.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from regopt._checks import is_finite_real
from regopt.optim.checks import check, check_int, check_real
from regopt.optim.flat_vector import add_flat_, flatten
from regopt.optim.line_search import Evaluate, LineSearchResult, Scalar, strong_wolfe

__all__ = ["LineSearch", "LineSearchOptimizer"]

LineSearch = Callable[[Evaluate, Scalar, Tensor, float, Tensor, Tensor], LineSearchResult]
"""``(evaluate, t0, d, f, g, gtd) -> LineSearchResult``: the protocol of
:func:`~regopt.optim.line_search.strong_wolfe`."""


class LineSearchOptimizer(Optimizer):
    """Base of the closure-driven line-search methods; see the module docstring for the loop.

    Args:
        params: the parameters, in one group (the update couples all of them).
        lr: first trial step of each line search (scaled by ``min(1, 1/||g||_1)`` on the very first
            iteration, as torch); the fixed step when ``line_search=None``.
        max_iter: most iterations per :meth:`step`.
        max_eval: most closure calls per :meth:`step` (default ``max_iter * 5 // 4``, as torch).
        tolerance_grad: stop when ``max |g_i| <= tolerance_grad``.
        tolerance_change: stop when the step (max norm) or the loss change is below it.
        line_search: ``"strong_wolfe"``, ``None`` (fixed step ``lr``) or a callable with the protocol of
            :data:`LineSearch` (e.g. an exact line search for a quadratic).
        c1, c2: the strong Wolfe constants, ``0 < c1 < c2 < 1`` (:func:`~regopt.optim.line_search.strong_wolfe`:
            sufficient decrease ``phi(t) <= phi(0) + c1 t phi'(0)``, curvature ``|phi'(t)| <= c2 |phi'(0)|``);
            kept in the param group (saved by ``state_dict``, as ``lr``).
    """

    needs_closure = True
    """Every step re-evaluates the loss through the closure (the lab's Trainer passes one; see
    :func:`regopt.optim.needs_closure`)."""

    def __init__(
        self,
        params: Any,
        lr: float,
        max_iter: int,
        max_eval: int | None,
        tolerance_grad: float,
        tolerance_change: float,
        line_search: str | LineSearch | None,
        c1: float,
        c2: float,
        **extra: Any,
    ) -> None:
        check_real("lr", lr, positive=True)
        check_int("max_iter", max_iter, 1)
        if max_eval is not None:
            check_int("max_eval", max_eval, 1)
        max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        check_real("tolerance_grad", tolerance_grad)
        check_real("tolerance_change", tolerance_change)
        ok = line_search is None or line_search == "strong_wolfe" or callable(line_search)
        check("line_search", line_search, ok, "must be 'strong_wolfe', None or a callable")
        check("c1", c1, is_finite_real(c1) and 0 < c1 < 1, "must be in (0, 1)")
        check("c2", c2, is_finite_real(c2) and c1 < c2 < 1, f"must be in (c1, 1) = ({c1}, 1)")
        defaults = {
            "lr": float(lr),
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": float(tolerance_grad),
            "tolerance_change": float(tolerance_change),
            "c1": float(c1),
            "c2": float(c2),
            **extra,
        }
        super().__init__(params, defaults)  # add_param_group refuses a second group
        self.line_search = line_search

    @property
    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]  # read each time: a deep copy or a loaded state has new groups

    def __getstate__(self) -> dict[str, Any]:  # torch's keeps defaults, state and groups only
        return {**super().__getstate__(), "line_search": self.line_search}

    def __setstate__(self, state: dict[str, Any]) -> None:  # also what load_state_dict calls with the new groups
        super().__setstate__(state)
        signature = inspect.signature(type(self).__init__).parameters  # this class's defaults (CG: c2 = 0.1)
        for group in self.param_groups:  # a state saved before c1 and c2 were settable: the defaults
            for key in ("c1", "c2"):
                group.setdefault(key, self.defaults.get(key, signature[key].default))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError(
                f"{type(self).__name__} takes one parameter group (its update couples all parameters), got a second"
            )
        super().add_param_group(param_group)

    # ------------------------------------------------------------------------ what a subclass provides
    def _direction(self, state: dict[str, Any], g: Tensor) -> Tensor:
        """The search direction at the current point, gradient ``g``; ``state["n_iter"] == 1`` on the first."""
        raise NotImplementedError

    def _initial_step(self, state: dict[str, Any], g: Tensor, gtd: Tensor, lr: float) -> Scalar:
        """First trial step of the line search (torch's rule: ``min(1, 1/||g||_1) lr`` first, then ``lr``)."""
        if state["n_iter"] > 1:
            return lr
        scale: Scalar = min(1.0, 1.0 / g.abs().sum())  # a tensor when below 1, as torch
        return scale * lr

    def _update(self, state: dict[str, Any], s: Tensor, y: Tensor) -> None:
        """Update the curvature memory with the step ``s`` and the gradient change ``y`` (default: nothing)."""

    # ------------------------------------------------------------------------------------- flat helpers
    def _gather_flat_grad(self) -> Tensor:
        """The gradients as one new flat tensor (``torch.cat`` always allocates), zeros where ``.grad`` is None."""
        return flatten([p.grad for p in self._params], self._params)

    def _add(self, t: Scalar, d: Tensor) -> None:
        """``x <- x + t d`` over the parameters."""
        add_flat_(self._params, float(t), d)

    def _evaluate(self, closure: Callable[[], Any], x: list[Tensor]) -> Evaluate:
        def evaluate(t: float, d: Tensor) -> tuple[float, Tensor]:
            self._add(t, d)
            loss = float(closure())
            grad = self._gather_flat_grad()
            for p, p0 in zip(self._params, x, strict=True):
                p.copy_(p0)
            return loss, grad

        return evaluate

    # --------------------------------------------------------------------------------------- the loop
    @torch.no_grad()
    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Run up to ``max_iter`` iterations; ``closure`` zeroes the gradients, computes the loss, calls
        ``backward`` and returns the loss. Returns the loss at the starting point (as torch's LBFGS)."""
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that re-evaluates the loss and its gradient")
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        g = self._gather_flat_grad()
        if g.abs().max() <= tolerance_grad:
            return orig_loss

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            d = self._direction(state, g)
            gtd = g.dot(d)  # a 0-dim tensor, as torch: the scalar tests round in the parameters' dtype
            t = self._initial_step(state, g, gtd, lr)
            # g is never written in place (each evaluation gathers a new tensor), so it is kept without a copy
            state["d"], state["prev_flat_grad"], state["prev_loss"], state["gtd"] = d, g, loss, gtd
            if gtd > -tolerance_change:  # not a descent direction, or a flat one
                break

            evals = 0
            new_g: Tensor | None = None
            if self.line_search is None:
                self._add(t, d)
                if n_iter != max_iter:  # as torch: no evaluation after the last iteration
                    loss = float(closure())
                    new_g, evals = self._gather_flat_grad(), 1
            else:
                evaluate = self._evaluate(closure, [p.clone() for p in self._params])
                if self.line_search == "strong_wolfe":
                    found = strong_wolfe(
                        evaluate, t, d, loss, g, gtd, c1=group["c1"], c2=group["c2"], max_ls=max_eval - current_evals
                    )
                else:
                    found = self.line_search(evaluate, t, d, loss, g, gtd)  # type: ignore[operator]
                t, loss, new_g, evals = found.t, found.loss, found.grad, found.evals
                self._add(t, d)
            state["t"] = t
            current_evals += evals
            state["func_evals"] += evals
            if new_g is not None:
                self._update(state, d.mul(t), new_g.sub(g))
                g = new_g

            if n_iter == max_iter or current_evals >= max_eval:
                break
            if g.abs().max() <= tolerance_grad:
                break
            if d.mul(t).abs().max() <= tolerance_change or abs(loss - state["prev_loss"]) < tolerance_change:
                break
        return orig_loss
