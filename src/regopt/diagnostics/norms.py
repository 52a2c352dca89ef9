"""Gradient norms (Goodfellow et al. 2016, sec. 8.2.4): the global L2 norm of a model's gradient and its parts.

The measurement behind :class:`~regopt.diagnostics.gradients.GradientMonitor` and
:class:`~regopt.diagnostics.plateau.PlateauMonitor`: the norm of every ``.grad`` tensor from one
``torch._foreach_norm`` call, reduced on the device (no host sync until a caller asks for floats).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

__all__ = ["global_grad_norm", "gradient_norms"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _grads(named: list[tuple[str, nn.Parameter]]) -> tuple[list[str], list[Tensor]]:
    """Names and ``.grad`` tensors of the parameters that have a gradient, in model order."""
    pairs = [(name, p.grad) for name, p in named if p.grad is not None]
    return [name for name, _ in pairs], [g for _, g in pairs]


def _norms(grads: list[Tensor]) -> Tensor:
    """The L2 norm of every tensor in ``grads`` as one float64 vector: one ``_foreach_norm`` call, no sync.

    Low-precision gradients are reduced in float32 so that a large norm does not overflow float16. DTensor
    gradients (FSDP2, tensor parallel) give the norm of the whole gradient (the shards' norms are all-reduced).
    """
    dtype = torch.float32 if any(g.dtype in _LOW_PRECISION for g in grads) else None
    norms = torch._foreach_norm(grads, 2, dtype=dtype)
    if any(isinstance(n, DTensor) for n in norms):  # a sharded gradient's norm: reduce over the ranks
        norms = tuple(n.full_tensor() if isinstance(n, DTensor) else n for n in norms)
    try:
        stacked = torch.stack(norms)  # promotes mixed dtypes
    except RuntimeError:  # norms on several devices: gather them on the first one
        stacked = torch.stack([n.to(norms[0].device) for n in norms])
    return stacked.to(torch.float64)


def global_grad_norm(model: nn.Module) -> Tensor | None:
    """The global L2 norm of the model's ``.grad`` as a 0-d float64 tensor (no host sync); ``None`` without grads."""
    _, grads = _grads(list(model.named_parameters()))
    if not grads:
        return None
    return torch.linalg.vector_norm(_norms(grads))


def gradient_norms(model: nn.Module, *, by: str = "parameter") -> tuple[float, dict[str, float]]:
    """The global L2 norm of the current gradients and the norm of each layer's part of it.

    ``||g|| = sqrt(sum_l ||g_l||^2)`` over the parameters that have a ``.grad`` (others are left out). The per-
    tensor norms come from one ``torch._foreach_norm`` call and reach the host in one transfer.

    Args:
        model: any ``nn.Module`` after ``backward()``.
        by: ``"parameter"`` (default): one entry per named parameter (``"0.weight"``, ``"0.bias"``);
            ``"module"``: one per module owning parameters (``"0"``), the norm of all its parameters' gradients.

    Returns:
        ``(global_norm, {name: norm})``; ``(0.0, {})`` when no parameter has a gradient.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Linear(3, 1)
        >>> model(torch.ones(2, 3)).sum().backward()
        >>> total, layers = gradient_norms(model)
        >>> sorted(layers), round(total, 4)
        (['bias', 'weight'], 4.0)
    """
    if by not in ("parameter", "module"):
        raise ValueError(f"by must be 'parameter' or 'module', got {by!r}")
    names, grads = _grads(list(model.named_parameters()))
    if not grads:
        return 0.0, {}
    total, layer_norms = _host_norms(grads)
    if by == "parameter":
        return total, dict(zip(names, layer_norms, strict=True))
    squares: dict[str, float] = {}
    for name, norm in zip(names, layer_norms, strict=True):
        module = name.rpartition(".")[0]
        squares[module] = squares.get(module, 0.0) + norm * norm
    return total, {module: math.sqrt(square) for module, square in squares.items()}


def _host_norms(grads: list[Tensor]) -> tuple[float, list[float]]:
    """The global norm and each tensor's norm as Python floats, in one host transfer."""
    norms = _norms(grads)
    values = torch.cat([torch.linalg.vector_norm(norms).reshape(1), norms]).tolist()
    return values[0], values[1:]
