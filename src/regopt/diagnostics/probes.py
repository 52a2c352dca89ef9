"""Random probe vectors and block products: what the matrix-free estimators of curvature share.

:class:`LinearOperator` is the protocol they take (a :class:`~regopt.diagnostics.hessian_operator.HessianOperator`,
or anything with ``matvec``, ``dim``, ``dtype`` and ``device``); :func:`apply_block` multiplies a block of vectors
with the operator's ``matmat`` where it has one (one vectorized pass for all of them) and with stacked ``matvec``
calls otherwise; :func:`random_vector` and :func:`random_block` draw the seeded Gaussian or Rademacher probes (each
vector from its own seed, so a block of seeds ``s, s+1, ...`` holds the same vectors as one-at-a-time draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["LinearOperator", "apply_block", "balanced_step", "check_at_least", "random_block", "random_vector"]


class LinearOperator(Protocol):
    """What the curvature estimators need: ``matvec`` on flat vectors of length ``dim`` (``matmat`` on a
    ``(k, dim)`` block of rows is used when present)."""

    dim: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: Tensor) -> Tensor: ...


def check_at_least(name: str, value: int, low: int = 1) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value >= low``."""
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def balanced_step(total: int, at_most: int) -> int:
    """The block size that splits ``total`` items into the fewest blocks of at most ``at_most``, as equal as
    possible (99 by 32: four blocks of 25, not 32, 32, 32 and 3: a vectorized pass over few vectors costs
    nearly as much as over many)."""
    blocks = max(1, -(-total // at_most))
    return max(1, -(-total // blocks))


def random_vector(op: LinearOperator, seed: int, kind: str = "gaussian") -> Tensor:
    """A probe of length ``op.dim`` drawn in float64 from ``torch.Generator().manual_seed(seed)``: standard
    Gaussian, or Rademacher (``+-1`` with equal probability); cast to the operator's dtype and device."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "rademacher":
        z = torch.randint(0, 2, (op.dim,), generator=gen, dtype=torch.float64) * 2 - 1
    else:
        z = torch.randn(op.dim, generator=gen, dtype=torch.float64)
    return z.to(dtype=op.dtype, device=op.device)


def random_block(op: LinearOperator, seeds: Sequence[int], kind: str = "gaussian") -> Tensor:
    """``(len(seeds), dim)``: row i is ``random_vector(op, seeds[i], kind)``."""
    if not seeds:
        return torch.empty(0, op.dim, dtype=op.dtype, device=op.device)
    return torch.stack([random_vector(op, seed, kind) for seed in seeds])


def apply_block(op: LinearOperator, vectors: Tensor) -> Tensor:
    """``(k, dim)`` block whose row i is ``H v_i``, for ``vectors`` of shape ``(k, dim)`` (one vector per row):
    ``op.matmat`` when the operator has it, stacked ``op.matvec`` calls otherwise."""
    matmat = getattr(op, "matmat", None)
    if matmat is not None:
        return matmat(vectors)
    return torch.stack([op.matvec(v) for v in vectors]) if len(vectors) else vectors.clone()
