"""Parameter groups that apply weight decay to weights but not to biases or normalization parameters."""

from __future__ import annotations

from typing import Any

from torch import nn

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weights with ``weight_decay``, and biases and normalization parameters with 0.

    Biases and the scale/shift of normalization layers are left undecayed because shrinking them toward zero
    does not reduce capacity the way shrinking weights does (Goodfellow et al. 2016, sec. 7.1).

    Example::

        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> groups = decay_groups(model, 1e-4)
        >>> [len(g["params"]) for g in groups]
        [2, 4]
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(module, NORM_TYPES) or name.endswith("bias") or p.dim() < 2:
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
