r"""Regularization and under-constrained problems (sec. 7.3): ridge makes X'X invertible, pinv is its limit.

Linear regression's normal equations X'X w = X'y have no unique solution when X'X is singular, as it always is
when there are more features than examples (rank X <= n < d). Weight decay replaces them with

    (X'X + alpha I) w = X'y,

whose matrix is positive definite for every alpha > 0 (its eigenvalues are those of X'X plus alpha), so the
solution is unique and its condition number at most (lambda_max + alpha) / alpha. As alpha -> 0+ the ridge
solution tends to the Moore-Penrose pseudo-inverse solution X^+ y, the minimum-norm least-squares solution:

    X^+ = lim_{alpha -> 0} (X'X + alpha I)^{-1} X'.

Everything is computed in float64 and returned in float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from regopt._checks import check_alpha

Method = Literal["auto", "primal", "dual"]


class RidgePoint(NamedTuple):
    """One point of :func:`ridge_path`."""

    alpha: float
    distance: float  # ||w_ridge(alpha) - X^+ y||_2
    condition: float  # 2-norm condition number of X'X + alpha I


def _design(x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor (examples, features), got {_shape(x)}")
    x64 = x.detach().to(torch.float64)
    if y is None:
        return x64, None
    if not isinstance(y, Tensor) or y.dim() not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must be a tensor of shape ({x.shape[0]},) or ({x.shape[0]}, k), got {_shape(y)}")
    return x64, y.detach().to(torch.float64)


def _shape(t: object) -> str:
    return f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__


def regularized_gram(x: Tensor, alpha: float = 0.0) -> Tensor:
    """X'X + alpha I in float64 (alpha >= 0)."""
    x64, _ = _design(x)
    alpha = check_alpha(alpha)
    gram = x64.T @ x64
    return gram + alpha * torch.eye(gram.shape[0], dtype=torch.float64, device=gram.device)


def gram_condition_number(x: Tensor, alpha: float = 0.0) -> float:
    """2-norm condition number of X'X + alpha I (``inf`` or astronomically large when it is singular)."""
    return float(torch.linalg.cond(regularized_gram(x, alpha)))


def ridge_solution(x: Tensor, y: Tensor, alpha: float, *, method: Method = "auto") -> Tensor:
    """The weight-decay solution w = (X'X + alpha I)^{-1} X'y, by ``torch.linalg.solve`` in float64.

    Args:
        x: design matrix, shape (n, d).
        y: targets, shape (n,) or (n, k).
        alpha: weight decay, > 0 (alpha = 0 is the plain normal equations, singular when d > n; use
            :func:`pseudo_inverse_solution` for that limit).
        method: ``"primal"`` solves the d x d system (X'X + alpha I) w = X'y; ``"dual"`` solves the n x n system
            (XX' + alpha I) c = y and returns w = X'c, the same w (push-through identity
            (X'X + alpha I)^{-1} X' = X'(XX' + alpha I)^{-1}); ``"auto"`` (default) takes the smaller system.

    Note:
        When d > n, X'X has d - n zero eigenvalues, so the primal system's condition number grows like 1/alpha
        and, in float64, rounding error overtakes the shrinking distance to X^+ y below alpha ~ 1e-6. XX' is
        invertible when X has full row rank, so the dual system stays well conditioned as alpha -> 0 and its
        solution tends to X^+ y = X'(XX')^{-1} y smoothly.

    Example::

        >>> x, y = torch.randn(20, 50), torch.randn(20)
        >>> w = ridge_solution(x, y, 0.1)
        >>> w.shape, w.dtype
        (torch.Size([50]), torch.float64)
    """
    x64, y64 = _design(x, y)
    alpha = check_alpha(alpha, positive=True)
    if method not in ("auto", "primal", "dual"):
        raise ValueError(f"method must be 'auto', 'primal' or 'dual', got {method!r}")
    assert y64 is not None  # _design returns y when given one
    n, d = x64.shape
    if method == "dual" or (method == "auto" and d > n):
        return x64.T @ torch.linalg.solve(regularized_gram(x64.T, alpha), y64)
    return torch.linalg.solve(regularized_gram(x64, alpha), x64.T @ y64)


def pseudo_inverse_solution(x: Tensor, y: Tensor) -> Tensor:
    """The minimum-norm least-squares solution X^+ y (Moore-Penrose pseudo-inverse), in float64."""
    x64, y64 = _design(x, y)
    return torch.linalg.pinv(x64) @ y64


def ridge_path(x: Tensor, y: Tensor, alphas: Iterable[float], *, method: Method = "auto") -> list[RidgePoint]:
    """For each alpha: (alpha, ||w_ridge(alpha) - X^+ y||_2, cond(X'X + alpha I)).

    Shows sec. 7.3 numerically: the condition number falls as alpha grows, and the distance to the
    pseudo-inverse solution vanishes as alpha -> 0. ``method`` is passed to :func:`ridge_solution`; the
    condition number is always that of the d x d matrix X'X + alpha I of the normal equations.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(20, 50, generator=g), torch.randn(20, generator=g)
        >>> path = ridge_path(x, y, [1.0, 1e-8])
        >>> [p.distance < 1e-4 for p in path]
        [False, True]

    References:
        Goodfellow, Bengio & Courville (2016), Deep Learning, sec. 7.3.
        Hoerl & Kennard (1970), ridge regression.
    """
    alphas = [check_alpha(a, positive=True) for a in alphas]
    if not alphas:
        raise ValueError("alphas must hold at least one value, got none")
    pinv = pseudo_inverse_solution(x, y)
    path = []
    for alpha in alphas:
        w = ridge_solution(x, y, alpha, method=method)
        path.append(RidgePoint(alpha, float(torch.linalg.vector_norm(w - pinv)), gram_condition_number(x, alpha)))
    return path
