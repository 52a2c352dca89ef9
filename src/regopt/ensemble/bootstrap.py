"""Bootstrap resampling for bagging: K samples with replacement, their out-of-bag examples, their minibatches.

Bagging (Breiman 1996; Goodfellow et al. 2016, sec. 7.11) trains member i on a data set of the same size n as
the training set, drawn from it with replacement. Each resample leaves out about (1 - 1/n)^n ~ 1/e ~ 36.8% of
the examples (the member's *out-of-bag* examples) and repeats others, so the members differ and so do their
errors.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from regopt._checks import is_int


def _check_positive(name: str, value: int) -> None:
    if not is_int(value) or value < 1:
        raise ValueError(f"Invalid {name}: {value!r} (must be an int >= 1)")


def bootstrap_indices(n: int, k: int, generator: torch.Generator | None = None) -> Tensor:
    """K bootstrap resamples of ``range(n)``: row i holds the n example indices (with repeats) of member i.

    Args:
        n: size of the training set, and of each resample.
        k: number of resamples (ensemble members).
        generator: a CPU ``torch.Generator`` for reproducible draws (default: the global generator).

    Returns:
        An int64 tensor of shape ``(k, n)`` with entries drawn uniformly from ``0..n-1`` with replacement.

    Example::

        >>> rows = bootstrap_indices(1000, 4, torch.Generator().manual_seed(0))
        >>> rows.shape
        torch.Size([4, 1000])
        >>> 0.6 < len(rows[0].unique()) / 1000 < 0.66  # ~ 1 - 1/e = 63.2% distinct examples
        True
    """
    _check_positive("n", n)
    _check_positive("k", k)
    return torch.randint(n, (k, n), generator=generator)


def out_of_bag_mask(indices: Tensor, n: int) -> Tensor:
    """``mask[i, j]`` is True where example j is *not* in member i's resample ``indices[i]`` (its out-of-bag set).

    Args:
        indices: ``(k, m)`` example indices in ``0..n-1``, e.g. from :func:`bootstrap_indices`.
        n: size of the training set.

    Returns:
        A bool tensor of shape ``(k, n)``.
    """
    _check_positive("n", n)
    if indices.ndim != 2:
        raise ValueError(f"Invalid indices: shape {tuple(indices.shape)} (must be (k, m))")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise ValueError(f"Invalid indices: values must lie in 0..{n - 1}")
    mask = torch.ones(indices.shape[0], n, dtype=torch.bool, device=indices.device)
    return mask.scatter_(1, indices, False)


def bootstrap_batches(indices: Tensor, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Tensor]:
    """One epoch of minibatches for every member at once, each drawn only from that member's own resample.

    Each row of ``indices`` is shuffled by its own random permutation (``torch.randperm``, drawn in row order;
    one ``argsort`` of uniform noise over all rows took 1.2 ms per epoch at K=8, n=3200, against 0.09 ms), then
    cut into consecutive slices of ``batch_size`` (the last one may be shorter). Member i's minibatch at a step
    is row i of the yielded tensor, so an epoch visits every entry of member i's resample once, repeats included.

    Args:
        indices: ``(k, n)`` resamples from :func:`bootstrap_indices`.
        batch_size: examples per member per step.
        generator: a CPU ``torch.Generator`` for the permutations (default: the global generator).

    Yields:
        ``(k, b)`` int64 tensors of example indices on ``indices.device``; gather a batch with ``x[batch]``,
        which has shape ``(k, b, ...)``.
    """
    _check_positive("batch_size", batch_size)
    if indices.ndim != 2:
        raise ValueError(f"Invalid indices: shape {tuple(indices.shape)} (must be (k, n))")
    k, n = indices.shape
    permutations = torch.stack([torch.randperm(n, generator=generator) for _ in range(k)]).to(indices.device)
    order = indices.gather(1, permutations)  # row i: member i's resample in its own random order
    for start in range(0, n, batch_size):
        yield order[:, start : start + batch_size]
