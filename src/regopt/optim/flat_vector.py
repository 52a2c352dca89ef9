"""Parameters as one flat vector, for the methods whose update couples all of them (Newton, Hessian-free,
conjugate gradients, BFGS, L-BFGS).

These methods work on ``theta``, ``g`` and directions ``d`` of ``dim`` entries, flattened in parameter order
(each tensor row-major, as ``torch.cat([p.reshape(-1) for p in params])``); the helpers here copy between the
parameters and such vectors. Unlike :mod:`regopt.optim.flat` (which re-homes parameters as views into flat
buffers, so the first-order updates run in place), nothing here changes where a parameter lives: the vectors are
copies, and the methods run in one parameter group only (:func:`single_group_params`), as ``torch.optim.LBFGS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["add_flat_", "flat_params", "flatten", "set_flat_", "set_grad_", "single_group_params", "unflatten"]


def flatten(tensors: Iterable[Tensor | None], params: list[Tensor]) -> Tensor:
    """The per-parameter ``tensors`` (gradients, products) as one new flat vector, zeros where one is ``None``."""
    return torch.cat(
        [(p.new_zeros(p.numel()) if t is None else t.reshape(-1)) for t, p in zip(tensors, params, strict=True)]
    )


def unflatten(v: Tensor, params: list[Tensor]) -> list[Tensor]:
    """The flat vector ``v`` split into views shaped like ``params``."""
    return [c.view_as(p) for c, p in zip(v.split([p.numel() for p in params]), params, strict=True)]


def flat_params(params: list[Tensor]) -> Tensor:
    """The parameters concatenated into one detached flat vector."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_(params: list[Tensor], theta: Tensor) -> None:
    """Copy the flat vector ``theta`` into ``params``."""
    with torch.no_grad():
        for p, chunk in zip(params, unflatten(theta, params), strict=True):
            p.copy_(chunk)


def set_grad_(params: list[Tensor], g: Tensor, used: Sequence[bool] | None = None) -> None:
    """Write the flat gradient ``g`` into ``params``' ``.grad`` (into the tensors already there, if any); a
    parameter the loss did not use (``used[i]`` False) keeps its ``.grad``, as after ``backward()``."""
    for i, (p, chunk) in enumerate(zip(params, unflatten(g, params), strict=True)):
        if used is not None and not used[i]:
            continue
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)


def add_flat_(params: list[Tensor], t: float, d: Tensor) -> None:
    """``theta <- theta + t d`` over ``params`` (in place, one fused ``add_`` per parameter)."""
    with torch.no_grad():
        for p, chunk in zip(params, unflatten(d, params), strict=True):
            p.add_(chunk, alpha=t)


def single_group_params(optimizer: Optimizer, name: str) -> list[Tensor]:
    """The parameters with ``requires_grad`` of the one param group (curvature couples them all, as in
    ``torch.optim.LBFGS``); ``ValueError`` naming ``name`` when there are more groups."""
    if len(optimizer.param_groups) != 1:
        raise ValueError(
            f"{name} takes one parameter group (its update couples all parameters), got {len(optimizer.param_groups)}"
        )
    return [p for p in optimizer.param_groups[0]["params"] if p.requires_grad]
