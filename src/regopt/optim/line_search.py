"""Strong-Wolfe line search along a direction of a flat parameter vector (Nocedal & Wright 2006, Alg. 3.5-3.6).

The search looks for a step ``t > 0`` along a descent direction ``d`` from ``x`` that satisfies the strong
Wolfe conditions on ``phi(t) = f(x + t d)``::

    phi(t) <= phi(0) + c1 t phi'(0)          (sufficient decrease, Armijo)
    |phi'(t)| <= c2 |phi'(0)|                (curvature, strong form)

with ``0 < c1 < c2 < 1``. Phase 1 (Alg. 3.5) grows ``t`` by cubic extrapolation until it brackets an interval
that contains such a step; phase 2 (Alg. 3.6, "zoom") shrinks the bracket by safeguarded cubic interpolation
until a trial step satisfies both conditions. The safeguards and the order of the tests follow
``torch.optim.lbfgs._strong_wolfe`` (itself a port of minFunc's ``WolfeLineSearch``), so that both give the same
step: :class:`regopt.optim.LBFGS` is then a drop-in for ``torch.optim.LBFGS``. As there, the slopes
``phi'(t) = g' d`` stay 0-dim tensors of the parameters' dtype, so the tests' scalar arithmetic rounds as torch's
does (in float32 near a minimum, the Armijo test ``phi(t) <= phi(0) + c1 t phi'(0)`` then decides as torch's).

References:
    Nocedal, J. & Wright, S. J. (2006). Numerical Optimization, 2nd ed., sec. 3.5, Algorithms 3.5 and 3.6,
    eq. (3.59) (cubic interpolation).
    Schmidt, M. (2005). minFunc, ``WolfeLineSearch.m``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["Evaluate", "LineSearchResult", "Scalar", "cubic_minimizer", "strong_wolfe"]

Scalar = Any
"""A step or slope: a Python float, or a 0-dim tensor of the parameters' dtype (``Any``: mypy cannot mix them)."""

Evaluate = Callable[[float, Tensor], tuple[float, Tensor]]
"""``(t, d) -> (f(x + t d), grad f(x + t d))`` as a flat tensor; ``x`` is fixed by the caller. The gradient must
be a tensor of its own (not a view of ``.grad`` that the next evaluation overwrites)."""


@dataclass
class LineSearchResult:
    """The accepted step ``t``, the loss and flat gradient there, and the number of ``evaluate`` calls."""

    t: Scalar
    loss: float
    grad: Tensor
    evals: int


@dataclass
class _Point:
    """One trial step of the search: ``t``, ``phi(t)``, the gradient and ``phi'(t) = g' d``."""

    t: Scalar
    f: float
    g: Tensor
    gtd: Tensor


def cubic_minimizer(a: _Point, b: _Point, bounds: tuple[Scalar, Scalar] | None = None) -> Scalar:
    """Minimizer of the cubic through ``(a.t, a.f)`` and ``(b.t, b.f)`` with slopes ``a.gtd`` and ``b.gtd``,
    clipped to ``bounds`` (default: the interval between the two points); the midpoint if the cubic has no
    minimizer (Nocedal & Wright 2006, eq. 3.59)."""
    lo, hi = bounds if bounds is not None else (min(a.t, b.t), max(a.t, b.t))
    d1 = a.gtd + b.gtd - 3 * (a.f - b.f) / (a.t - b.t)
    d2_square = d1**2 - a.gtd * b.gtd
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = d2_square.sqrt()
    if a.t <= b.t:
        t = b.t - (b.t - a.t) * ((b.gtd + d2 - d1) / (b.gtd - a.gtd + 2 * d2))
    else:
        t = a.t - (a.t - b.t) * ((a.gtd + d2 - d1) / (a.gtd - b.gtd + 2 * d2))
    return min(max(t, lo), hi)


def strong_wolfe(
    evaluate: Evaluate,
    t: Scalar,
    d: Tensor,
    f: float,
    g: Tensor,
    gtd: Tensor,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> LineSearchResult:
    """A step along ``d`` satisfying the strong Wolfe conditions, starting the search at ``t``.

    Args:
        evaluate: ``(t, d) -> (loss, flat grad)`` at ``x + t d`` (see :data:`Evaluate`).
        t: first trial step (1 for quasi-Newton directions).
        d: search direction, a descent direction: ``gtd = g' d < 0``.
        f, g, gtd: loss, flat gradient and directional derivative at ``t = 0``.
        c1, c2: the Wolfe constants, ``0 < c1 < c2 < 1`` (0.1 suits conjugate gradients, 0.9 quasi-Newton).
        tolerance_change: stop zooming once the bracket moves ``x`` by less than this (in max norm).
        max_ls: most calls of ``evaluate`` after the first (torch's ``max_ls``: at most ``max_ls + 1`` in all).

    Returns:
        The accepted step, or the best step found when the budget or the bracket tolerance ran out first.
    """
    d_norm = d.abs().max()
    origin = _Point(0.0, f, g, gtd)  # g and each evaluated gradient are only read, never written

    def trial(step: Scalar) -> _Point:
        loss, grad = evaluate(float(step), d)
        return _Point(step, loss, grad, grad.dot(d))

    # Phase 1 (Alg. 3.5): extrapolate until [prev, new] brackets an acceptable step, or new is acceptable.
    prev, new = origin, trial(t)
    extra = 0  # evaluations after the first
    bracket: list[_Point] | None = None
    while extra < max_ls:
        if new.f > f + c1 * new.t * gtd or (extra > 1 and new.f >= prev.f):
            bracket = [prev, new]  # sufficient decrease fails, or the loss rose: a minimizer lies between
            break
        if abs(new.gtd) <= -c2 * gtd:
            return LineSearchResult(new.t, new.f, new.g, extra + 1)  # both conditions hold
        if new.gtd >= 0:
            bracket = [prev, new]  # the slope turned: a minimizer lies between
            break
        # cubic extrapolation into [t + 0.01 (t - t_prev), 10 t]
        step = cubic_minimizer(prev, new, bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10))
        prev, new = new, trial(step)
        extra += 1
    if bracket is None:  # budget spent while still extrapolating: the better of the origin and the last trial
        best = origin if origin.f <= new.f else new
        return LineSearchResult(best.t, best.f, best.g, extra + 1)

    # Phase 2 (Alg. 3.6, zoom): lo = the bracket end with the lower loss (the first on a tie), hi the other.
    lo, hi = (bracket[0], bracket[1]) if bracket[0].f <= bracket[1].f else (bracket[1], bracket[0])
    insufficient_progress = False
    while extra < max_ls:
        if abs(hi.t - lo.t) * d_norm < tolerance_change:
            break
        step = cubic_minimizer(lo, hi)
        # safeguard: a step within 10% of the bracket's ends is moved inside, unless progress was fine before
        left, right = min(lo.t, hi.t), max(lo.t, hi.t)
        margin = 0.1 * (right - left)
        if min(right - step, step - left) < margin:
            if insufficient_progress or step >= right or step <= left:
                step = right - margin if abs(step - right) < abs(step - left) else left + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        new = trial(step)
        extra += 1
        if new.f > f + c1 * new.t * gtd or new.f >= lo.f:
            hi = new  # sufficient decrease fails or no better than lo: shrink from the hi side
            if hi.f < lo.f:
                lo, hi = hi, lo
        else:
            if abs(new.gtd) <= -c2 * gtd:
                return LineSearchResult(new.t, new.f, new.g, extra + 1)
            if new.gtd * (hi.t - lo.t) >= 0:
                hi = lo  # the slope at new points away from hi: the minimizer lies between lo and new
            lo = new
    return LineSearchResult(lo.t, lo.f, lo.g, extra + 1)
