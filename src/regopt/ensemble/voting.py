"""Combining the predictions of several classifiers: averaged probabilities and majority vote.

Model averaging (Goodfellow et al. 2016, sec. 7.11) works because members make partly independent errors: with
K members whose errors have variance v and covariance c, the average's error has variance v/K + (K-1)c/K,
which is smaller than v unless the errors are perfectly correlated (c = v).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def vote_counts(predictions: Tensor, num_classes: int) -> Tensor:
    """``counts[b, c]``: how many members predicted class c for example b.

    Args:
        predictions: ``(k, B)`` class indices, one row per member.
        num_classes: C.

    Returns:
        An int64 tensor of shape ``(B, C)`` whose rows sum to k.
    """
    if predictions.ndim != 2:
        raise ValueError(f"Invalid predictions: shape {tuple(predictions.shape)} (must be (k, B))")
    return F.one_hot(predictions, num_classes).sum(0)


def majority_vote(predictions: Tensor, num_classes: int, *, proba: Tensor | None = None) -> Tensor:
    """The class most members predicted, for each example.

    Ties go to the tied class with the highest ``proba`` (e.g. the members' mean probability) when it is
    given, else to the lowest class index.

    Args:
        predictions: ``(k, B)`` class indices, one row per member.
        num_classes: C.
        proba: optional ``(B, C)`` probabilities in [0, 1] that break ties.

    Returns:
        ``(B,)`` int64 class indices.

    Example::

        >>> majority_vote(torch.tensor([[0, 1], [2, 1], [2, 0]]), 3)
        tensor([2, 1])
    """
    score = vote_counts(predictions, num_classes).to(torch.float64)
    if proba is not None:
        # A vote is worth 1 and proba / 2 is at most 0.5, so proba only decides between classes with equal votes.
        score = score + 0.5 * proba.to(torch.float64)
    return score.argmax(dim=1)  # argmax returns the first (lowest) index among equal maxima


def masked_scores(proba: Tensor, mask: Tensor, how: str) -> Tensor:
    """``(B, C)`` class scores of each example from only the members with ``mask[i, b]`` True (e.g. out-of-bag).

    ``how="mean"``: their summed probabilities; ``"vote"``: their votes, ties broken by their mean probability.
    ``proba`` is ``(k, B, C)``, ``mask`` ``(k, B)``; ``.argmax(-1)`` of the result gives the prediction.
    """
    masked = (proba * mask[..., None]).sum(dim=0)
    if how == "mean":
        return masked
    votes = (F.one_hot(proba.argmax(-1), proba.shape[-1]) * mask[..., None]).sum(dim=0).to(proba.dtype)
    return votes + 0.5 * masked / mask.sum(0).clamp(min=1)[:, None]


def average_models(models: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Plain model averaging: the mean of the softmax probabilities of independently trained classifiers.

    Each model is evaluated in ``eval()`` mode without gradients, and left in the mode it was in.

    Args:
        models: classifiers mapping ``x`` to logits of shape ``(B, C)``.
        x: ``(B, ...)`` inputs.

    Returns:
        ``(B, C)`` averaged probabilities; ``.argmax(1)`` gives the ensemble's prediction.

    Example::

        >>> nets = [nn.Linear(4, 3) for _ in range(5)]
        >>> average_models(nets, torch.randn(2, 4)).sum(1).allclose(torch.ones(2))
        True
    """
    if len(models) == 0:
        raise ValueError("Invalid models: empty (need at least one model to average)")
    total: Tensor | None = None
    for model in models:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                proba = model(x).softmax(dim=-1)
        finally:
            model.train(was_training)
        total = proba if total is None else total + proba
    assert total is not None
    return total / len(models)
