r"""The chapter's ill-conditioning criterion for one gradient step (Goodfellow et al. 2016, sec. 8.2.1).

A gradient step ``theta - eps g`` changes the loss, to second order, by

    L(theta - eps g) - L(theta) ~ 0.5 * eps^2 * g'Hg - eps * g'g

so when ``0.5 * eps^2 * g'Hg > eps * g'g`` even this small step *raises* the loss: ill-conditioning. The step
is safe up to ``eps = 2 g'g / g'Hg``, i.e. ``2 / c`` with ``c = g'Hg / g'g`` the curvature along g (a Rayleigh
quotient, between H's smallest and largest eigenvalues).

The chapter's worked example, ``f(x) = 30 x^2``: ``g = 60 x``, ``H = 60``, so ``c = 60`` and the stable learning
rate is ``2 / 60 = 1/30`` at every x: the criterion is negative at ``eps = 0.033`` and positive at ``0.034``,
for x = 3, 4 or 50 alike (only its magnitude, ``3600 x^2 eps (30 eps - 1)``, grows with x).

>>> import torch
>>> x = torch.tensor([3.0], dtype=torch.float64)
>>> g, hg = 60 * x, 60 * (60 * x)
>>> row = step_curvature(g, hg, lr=0.034)
>>> row["curvature"], round(row["stable_lr"], 6), row["criterion"] > 0
(60.0, 0.033333, True)

References:
    Goodfellow, I., Bengio, Y. & Courville, A. (2016). Deep Learning, sec. 8.2.1 (ill-conditioning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["criterion_row", "dots", "step_curvature"]


def step_curvature(g: Tensor, hg: Tensor, lr: float) -> dict[str, float]:
    r"""The chapter's ill-conditioning criterion for one gradient step of size ``lr`` (eps).

    Args:
        g: the gradient (any shape; flattened).
        hg: the Hessian-vector product ``H g``, same shape.
        lr: the learning rate eps (>= 0).

    Returns:
        ``gHg`` = g'Hg, ``gg`` = g'g, ``curvature`` = g'Hg / g'g (``nan`` if g = 0), ``criterion`` =
        ``0.5 * lr^2 * gHg - lr * gg`` (> 0: the step raises the loss to second order), and ``stable_lr`` =
        ``2 gg / gHg``, the largest lr with ``criterion <= 0`` (``inf`` if ``gHg <= 0``; ``nan`` -- unknown --
        if ``gHg`` or ``gg`` is not finite, e.g. overflowed in float32). Python floats, computed in float64.
    """
    if g.shape != hg.shape:
        raise ValueError(f"g and hg must have the same shape, got {tuple(g.shape)} and {tuple(hg.shape)}")
    if not lr >= 0:
        raise ValueError(f"lr must be >= 0, got {lr}")
    g64, hg64 = g.detach().reshape(-1).double(), hg.detach().reshape(-1).double()
    return criterion_row(float(torch.dot(g64, hg64)), float(torch.dot(g64, g64)), lr)


def dots(g: Sequence[Tensor], hg: Sequence[Tensor]) -> tuple[float, float]:
    """``(g . hg, g . g)`` over lists of tensors: products in the inputs' dtype summed by torch's cascade
    summation (accurate to a few units of that dtype's rounding), over one flat copy of each list: a handful of
    ops whatever the number of tensors (a check on a small model is otherwise dominated by per-tensor calls)."""
    flat_g = torch.cat([t.reshape(-1) for t in g])
    flat_hg = torch.cat([t.reshape(-1) for t in hg])
    return float((flat_g * flat_hg).sum()), float((flat_g * flat_g).sum())


def criterion_row(ghg: float, gg: float, lr: float) -> dict[str, float]:
    """The row :func:`step_curvature` returns, from the two dot products ``g'Hg`` and ``g'g``."""
    # where the dot products overflowed (float32 beyond 3.4e38) or are NaN there is no estimate, not 2 g'g / inf = 0
    finite = math.isfinite(ghg) and math.isfinite(gg)
    stable_lr = (2 * gg / ghg if ghg > 0 else math.inf) if finite else math.nan
    return {
        "gHg": ghg,
        "gg": gg,
        "curvature": ghg / gg if gg > 0 else math.nan,
        "criterion": 0.5 * lr**2 * ghg - lr * gg,
        "stable_lr": stable_lr,
    }
