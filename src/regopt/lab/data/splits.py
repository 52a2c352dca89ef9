"""Deterministic train / validation / test splits, shared by every dataset.

Every random choice draws from its own stream, derived from the split seed and a purpose key
(:func:`stream`), never from the global RNGs. So the test split does not depend on ``val_fraction``, the
validation split does not depend on ``train_size``, and loading data never disturbs the caller's seeds.

Classification splits are stratified: each split receives every class in (as nearly as integers allow) its
share of the pool, by the largest-remainder rule, so small training sets (``train_size=50``) stay balanced.

Order of operations (:func:`split_arrays`):

1. test: the dataset's own test split, or ``test_fraction`` of all examples;
2. validation: ``val_fraction`` of what remains (the training pool);
3. training: the rest, subsampled to ``train_size`` examples when given.
"""

from __future__ import annotations

import numpy as np

from regopt.lab.data.dataset import Dataset, Label, Task
from regopt.lab.data.errors import DataError

# Purpose keys of the random streams derived from one seed.
TEST, VAL, SUBSAMPLE, GENERATE = 0, 1, 2, 3


def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for ``(seed, key)``; the same arguments always give the same stream.

    Negative seeds are taken modulo 2**64 (as ``torch.manual_seed`` does).
    """
    return np.random.default_rng(np.random.SeedSequence(seed % 2**64, spawn_key=key))


def _quotas(counts: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` among groups of sizes ``counts`` in proportion, by the largest-remainder rule (exact
    integer arithmetic; ties go to the earlier group)."""
    n = int(counts.sum())
    scaled = counts.astype(np.int64) * k
    quotas, remainders = scaled // n, scaled % n
    short = k - int(quotas.sum())
    quotas[np.argsort(-remainders, kind="stable")[:short]] += 1
    return quotas


def choose(
    pool: np.ndarray, k: int, rng: np.random.Generator, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``k`` of the indices in ``pool`` at random; return ``(chosen, rest)``, each in random order.

    With ``labels`` (indexed by the values in ``pool``) the choice is stratified: each class gets its
    proportional share of ``k``.
    """
    if not 0 <= k <= len(pool):
        raise ValueError(f"cannot choose {k} of {len(pool)} indices")
    if labels is None:
        perm = rng.permutation(pool)
        return perm[:k], perm[k:]
    _, group, counts = np.unique(labels[pool], return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    quotas = _quotas(counts, k)
    # Rank each index within its class by a random key; keep the first quota of each class.
    order = np.lexsort((rng.random(len(pool)), group))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(pool), dtype=np.int64)
    rank[order] = np.arange(len(pool)) - np.repeat(starts, counts)
    keep = rank < quotas[group]
    return rng.permutation(pool[keep]), rng.permutation(pool[~keep])


def split_fraction(
    pool: np.ndarray, fraction: float, rng: np.random.Generator, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Carve ``round(fraction * len(pool))`` indices off ``pool`` (at least one, and leaving at least one):
    return ``(carved, rest)``. ``pool`` must hold at least two indices."""
    if len(pool) < 2:
        raise ValueError(f"cannot split a pool of {len(pool)} indices")
    k = min(max(round(fraction * len(pool)), 1), len(pool) - 1)
    return choose(pool, k, rng, labels)


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    name: str,
    task: Task,
    seed: int,
    val_fraction: float,
    train_size: int | None = None,
    test_fraction: float | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    num_classes: int | None = None,
    classes: tuple[Label, ...] | None = None,
    where: str | None = None,
) -> Dataset:
    """Split ``(x, y)`` into a :class:`Dataset` (see the module docstring for the order of operations).

    Args:
        x, y: all examples (or, with ``test``, the training pool), examples first. For classification ``y``
            holds class indices ``0..num_classes-1``.
        name, task, num_classes, classes: passed to :class:`Dataset`.
        seed: seed of the split streams.
        val_fraction: fraction of the training pool carved off as validation.
        train_size: keep only this many training examples (after validation is carved); ``None``: all.
        test_fraction: fraction of all examples held out as test; exclusive with ``test``.
        test: the dataset's own ``(x_test, y_test)``; ``x, y`` is then the training pool.
        where: what to name in error messages (a file path); defaults to ``name``.

    Raises:
        DataError: too few examples for the three splits, or ``train_size`` above the examples available.
    """
    where = where or name
    if (test is None) == (test_fraction is None):
        raise ValueError("give exactly one of test_fraction and test")
    if len(x) != len(y):
        raise DataError(f"{where}: x has {len(x)} examples but y has {len(y)}")
    labels = y if task == "classification" else None
    everything = np.arange(len(x))
    if test is None:
        if len(x) < 3:
            raise DataError(f"{where}: too few examples to split: {len(x)}; need at least 3 (train, validation, test)")
        assert test_fraction is not None
        test_idx, pool = split_fraction(everything, test_fraction, stream(seed, TEST), labels)
        x_test, y_test = x[test_idx], y[test_idx]
    else:
        x_test, y_test = test
        if len(x) < 2 or len(x_test) < 1:
            raise DataError(
                f"{where}: too few examples to split: {len(x)} for train and validation (need 2), "
                f"{len(x_test)} for test (need 1)"
            )
        pool = everything
    val_idx, train_idx = split_fraction(pool, val_fraction, stream(seed, VAL), labels)
    if train_size is not None:
        if train_size > len(train_idx):
            raise DataError(
                f"data.train_size: {train_size} is more than the {len(train_idx)} training examples "
                f"available after the validation split"
            )
        train_idx, _ = choose(train_idx, train_size, stream(seed, SUBSAMPLE), labels)
    return Dataset.from_arrays(
        name,
        task,
        train=(x[train_idx], y[train_idx]),
        val=(x[val_idx], y[val_idx]),
        test=(x_test, y_test),
        num_classes=num_classes,
        classes=classes,
    )
