"""Noise at the output targets (Goodfellow et al. 2016, sec. 7.5.1): label smoothing.

Hard 0/1 targets let maximum likelihood push softmax logits toward infinity; smoothed targets
``q = (1 - eps) * one_hot(y) + eps / k`` keep them finite. :func:`smoothed_cross_entropy` is the loss,
:func:`soft_targets` the target matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from regopt._checks import is_int, is_real


def _check_eps(eps: float, name: str = "label_smoothing") -> float:
    if not is_real(eps) or not 0.0 <= eps <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {eps!r}")
    return float(eps)


def smoothed_cross_entropy(label_smoothing: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy against label-smoothed targets (noise at the output targets, sec. 7.5.1).

    Returns ``loss(logits, y) = F.cross_entropy(logits, y, label_smoothing=eps)``, which is the cross-entropy
    ``-sum_c q_c log softmax(logits)_c`` against the soft targets of :func:`soft_targets`::

        q_c = (1 - eps) * [c == y] + eps / k      (k classes)

    i.e. ``1 - (k - 1) / k * eps`` for the true class and ``eps / k`` for each other class. Unlike hard 0/1
    targets, these keep softmax logits finite: maximum likelihood can no longer push them to infinity.

    Args:
        label_smoothing: eps in [0, 1] (0 is the plain cross-entropy).

    Example::

        >>> loss_fn = smoothed_cross_entropy(0.1)
        >>> round(float(loss_fn(torch.zeros(2, 5), torch.tensor([0, 3]))), 4)  # uniform prediction: log 5
        1.6094

    Note:
        Goodfellow et al. (2016, sec. 7.5.1) write the targets as ``eps_b / (k - 1)`` and ``1 - eps_b``; torch
        (and Szegedy et al. 2016) spread eps over all k classes. They are the same targets with
        ``eps = eps_b * k / (k - 1)``. Used as a Trainer loss function, the reported evaluation loss is the
        smoothed one too; error rates are unaffected.

    References:
        Szegedy et al. (2016), label smoothing; Goodfellow, Bengio & Courville (2016), sec. 7.5.1.
    """
    return SmoothedCrossEntropy(_check_eps(label_smoothing))


class SmoothedCrossEntropy:
    """The loss that :func:`smoothed_cross_entropy` returns: ``F.cross_entropy(logits, y, label_smoothing)``."""

    def __init__(self, label_smoothing: float) -> None:
        self.label_smoothing = _check_eps(label_smoothing)

    def __call__(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        return f"smoothed_cross_entropy({self.label_smoothing})"


def soft_targets(y: Tensor, num_classes: int, eps: float) -> Tensor:
    """The label-smoothed target matrix ``q = (1 - eps) * one_hot(y) + eps / k``, shape ``(n, k)``.

    Its rows sum to 1; the true class holds ``1 - (k - 1) / k * eps`` and every other class ``eps / k``
    (torch's ``label_smoothing`` convention; see :func:`smoothed_cross_entropy`).

    Args:
        y: class indices, an integer tensor of shape ``(n,)`` with values in ``[0, num_classes)``.
        num_classes: k (>= 1).
        eps: smoothing in [0, 1].

    Example::

        >>> soft_targets(torch.tensor([1]), 4, 0.2)
        tensor([[0.0500, 0.8500, 0.0500, 0.0500]])
    """
    eps = _check_eps(eps, "eps")
    if not is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dim() != 1:
        raise ValueError(f"y must be a 1-D integer tensor of class indices, got {y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"y must hold class indices in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    one_hot = F.one_hot(y.long(), num_classes).to(torch.get_default_dtype())
    return (1.0 - eps) * one_hot + eps / num_classes
