r"""The Hessian's trace and diagonal from Hessian-vector products: Hutchinson, Hutch++ and Bekas's estimator.

- Hutchinson (1989): ``tr H = E[z' H z]`` for Rademacher ``z``; the mean over ``m`` probes has standard error
  ``sqrt(2 * sum_{i != j} H_ij^2 / m)``, so the relative error falls like ``1 / sqrt(m)``.
- Hutch++ (Meyer, Musco, Musco & Woodruff 2021, Algorithm 1): spend a third of the ``m`` products on a sketch
  ``Q = orth(H S)`` of the top of the spectrum, whose trace ``tr(Q' H Q)`` is computed exactly with another
  third, and estimate only the deflated rest ``tr((I - QQ') H (I - QQ'))`` with Hutchinson on the last third.
  When the spectrum decays (as a network Hessian's does: a few large outliers over a bulk near zero) the rest
  is small and the error falls like ``1 / m`` instead of ``1 / sqrt(m)``.
- Bekas, Kokiopoulou & Saad (2007): ``diag H = E[z * H z]`` (elementwise) for Rademacher ``z``.

The probes are independent, so they are multiplied as blocks (``matmat``: one vectorized pass per block, see
:meth:`~regopt.diagnostics.hessian_operator.HessianOperator.matmat`), ``block_size`` at a time to bound memory;
a probe's vector depends only on its seed, so results do not depend on ``block_size`` beyond rounding.

References:
    Hutchinson, M. F. (1989). A stochastic estimator of the trace of the influence matrix for Laplacian
    smoothing splines. Comm. Statist. Simulation Comput. 18(3).
    Meyer, R. A., Musco, C., Musco, C. & Woodruff, D. P. (2021). Hutch++: Optimal stochastic trace estimation.
    SOSA.
    Bekas, C., Kokiopoulou, E. & Saad, Y. (2007). An estimator for the diagonal of a matrix. Applied Numerical
    Mathematics 57(11-12).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from regopt.diagnostics.probes import LinearOperator, apply_block, balanced_step, check_at_least, random_block

__all__ = ["hessian_diagonal", "hessian_trace"]


def _rademacher_products(op: LinearOperator, seeds: range, block_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(Z, H Z)`` in float64 for blocks of ``block_size`` Rademacher probes, one block in memory at a time."""
    step = balanced_step(len(seeds), block_size)
    for start in range(0, len(seeds), step):
        z = random_block(op, seeds[start : start + step], "rademacher")
        yield z.to(torch.float64), apply_block(op, z).to(torch.float64)


def _hutch_plus_plus(op: LinearOperator, samples: int, seed: int, block_size: int) -> float:
    k = samples // 3
    step = balanced_step(k, block_size)
    sketch = random_block(op, range(seed, seed + k), "rademacher")
    hs = torch.cat([apply_block(op, sketch[i : i + step]) for i in range(0, k, step)])
    q = torch.linalg.qr(hs.to(torch.float64).T).Q.T  # (k, dim): orthonormal rows spanning the top of H
    qd = q.to(op.dtype)
    hq = torch.cat([apply_block(op, qd[i : i + step]) for i in range(0, k, step)]).to(torch.float64)
    top = float((q * hq).sum())  # tr(Q' H Q)
    rest = 0.0
    count = samples - 2 * k
    step = balanced_step(count, block_size)
    for start in range(0, count, step):
        seeds = range(seed + k + start, seed + k + min(start + step, count))
        g = random_block(op, seeds, "rademacher").to(torch.float64)
        w = g - (g @ q.T) @ q  # (I - QQ') g, per row
        hw = apply_block(op, w.to(op.dtype)).to(torch.float64)
        rest += float((w * hw).sum())  # g'(I - QQ')H(I - QQ')g = w'H w
    return top + rest / count


def hessian_trace(
    op: LinearOperator,
    samples: int = 100,
    *,
    seed: int = 0,
    method: Literal["hutchinson", "hutch++"] = "hutchinson",
    block_size: int = 32,
) -> float:
    """An unbiased estimate of ``tr H`` from ``samples`` Hessian-vector products.

    ``method="hutchinson"``: the mean of ``z' H z`` over ``samples`` Rademacher vectors ``z`` (seeds ``seed``,
    ``seed + 1``, ...). Its standard error is ``sqrt(2 * sum_{i != j} H_ij^2 / samples)``: exact for diagonal H,
    and within a few percent after ~100 samples when H is dominated by its diagonal or has a large trace.

    ``method="hutch++"``: Meyer et al.'s Hutch++ with the same number of products (``samples >= 3``):
    ``samples // 3`` for the sketch ``H S``, as many for ``H Q``, the rest for Hutchinson on the deflated
    matrix. Exact when ``rank H <= samples // 3``; far more accurate than Hutchinson when the spectrum decays.

    Args:
        op: the Hessian operator.
        samples: Hessian-vector products in all (default 100).
        seed: seed of the first probe (default 0).
        method: ``"hutchinson"`` (default) or ``"hutch++"``.
        block_size: probes per ``matmat`` call (default 32).

    Returns:
        The estimate, a float.
    """
    check_at_least("block_size", block_size)
    if method == "hutch++":
        check_at_least("samples", samples, 3)
        return _hutch_plus_plus(op, samples, seed, block_size)
    if method != "hutchinson":
        raise ValueError(f"method must be 'hutchinson' or 'hutch++', got {method!r}")
    check_at_least("samples", samples)
    total = sum(float((z * hz).sum()) for z, hz in _rademacher_products(op, range(seed, seed + samples), block_size))
    return total / samples


def hessian_diagonal(op: LinearOperator, samples: int = 100, *, seed: int = 0, block_size: int = 32) -> Tensor:
    """Bekas et al.'s estimate of ``diag H``: the mean of ``z * H z`` (elementwise) over ``samples``
    Rademacher vectors (the probes of :func:`hessian_trace`, so its sum is Hutchinson's trace).

    Entry i has variance ``sum_{j != i} H_ij^2 / samples``: exact for diagonal H.

    Args:
        op: the Hessian operator.
        samples: Hessian-vector products (default 100).
        seed: seed of the first probe (default 0).
        block_size: probes per ``matmat`` call (default 32).

    Returns:
        float64 tensor of shape ``(dim,)``.
    """
    check_at_least("samples", samples)
    check_at_least("block_size", block_size)
    total = torch.zeros(op.dim, dtype=torch.float64, device=op.device)
    for z, hz in _rademacher_products(op, range(seed, seed + samples), block_size):
        total += (z * hz).sum(dim=0)
    return total / samples
