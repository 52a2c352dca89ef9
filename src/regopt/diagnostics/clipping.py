"""Gradient clipping (Pascanu et al. 2013; Goodfellow et al. 2016, sec. 8.2.4 and 10.11.1), the remedy for cliffs.

Clipping is torch's own (``torch.nn.utils.clip_grad_norm_``, ``clip_grad_value_``); :func:`clip_by_norm` and
:func:`clip_by_value` wrap them as gradient transforms ``model -> Any`` for any loop (regopt's Trainer runs them
between backward and the optimizer step, as its ``train.clip_grad_norm`` does).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from regopt._checks import check_real, is_real

__all__ = ["clip_by_norm", "clip_by_value"]


def clip_by_norm(max_norm: float, *, norm_type: float = 2.0) -> Callable[[nn.Module], Tensor]:
    """A gradient transform ``model -> total_norm`` rescaling the gradient to norm ``<= max_norm``.

    ``g <- g * min(1, max_norm / ||g||)`` (Pascanu et al. 2013; Goodfellow et al. 2016, eq. 10.48): the
    direction of the step is kept, only its length is bounded, so a step off a cliff stays small. It calls
    ``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type, foreach=True)`` and returns its
    result, the total norm before clipping (a tensor; no host sync).

    Example:
        >>> from torch import nn
        >>> model = nn.Linear(2, 1)
        >>> model(torch.ones(1, 2)).sum().mul(100).backward()
        >>> norm_before = clip_by_norm(1.0)(model)
        >>> norm_after = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
        >>> round(float(norm_before), 2), round(float(norm_after), 4)
        (173.21, 1.0)
    """
    check_real("max_norm", max_norm, positive=True)
    if not is_real(norm_type) or norm_type <= 0:
        raise ValueError(f"norm_type must be a number > 0 (or inf), got {norm_type!r}")

    def clip_grad_norm(model: nn.Module) -> Tensor:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type, foreach=True)

    clip_grad_norm.__qualname__ = f"clip_by_norm({max_norm!r})"
    return clip_grad_norm


def clip_by_value(value: float) -> Callable[[nn.Module], None]:
    """A gradient transform ``model -> None`` clamping every gradient element into ``[-value, value]``.

    Calls ``torch.nn.utils.clip_grad_value_(model.parameters(), value, foreach=True)``, which returns nothing
    (hence ``None``). Unlike :func:`clip_by_norm` it changes the direction of the gradient.
    """
    check_real("value", value, positive=True)

    def clip_grad_value(model: nn.Module) -> None:
        torch.nn.utils.clip_grad_value_(model.parameters(), value, foreach=True)

    clip_grad_value.__qualname__ = f"clip_by_value({value!r})"
    return clip_grad_value
