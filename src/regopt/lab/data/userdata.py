"""Checks shared by user data files (``npz``, ``csv``): numeric, finite, matching lengths, then labels
encoded for the task and the usual splits.

Task ``"auto"`` is classification when every label is integral (and there is one label per example), else
regression. Classification labels are remapped to ``0..K-1`` in sorted order; the original values are kept
in :attr:`Dataset.classes` (``classes[k]`` is the label encoded as ``k``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regopt.lab.config import CsvData, NpzData
from regopt.lab.data.dataset import Dataset, Label, Task
from regopt.lab.data.errors import DataError
from regopt.lab.data.splits import split_arrays

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integer, float


def existing_file(path: Path) -> Path:
    """``path`` if it is a file, else a :class:`DataError` naming ``data.path``."""
    if not path.exists():
        raise DataError(f"data.path: no such file: {path}")
    if not path.is_file():
        raise DataError(f"data.path: not a file: {path}")
    return path


def check_numeric(a: np.ndarray, what: str, where: str) -> None:
    """Reject arrays of strings, objects or complex numbers."""
    if a.dtype.kind not in _NUMERIC_KINDS:
        raise DataError(f"{where}: {what} is not numeric (dtype {a.dtype})")


def count_nonfinite(a: np.ndarray) -> str:
    """``"2 NaN and 1 Inf"`` for the non-finite entries of ``a``; ``""`` when all are finite."""
    if a.dtype.kind != "f":
        return ""
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return " and ".join(f"{count} {kind}" for count, kind in ((nan, "NaN"), (inf, "Inf")) if count)


def check_finite(a: np.ndarray, what: str, where: str) -> None:
    """Reject arrays holding NaN or Inf, saying how many."""
    found = count_nonfinite(a)
    if found:
        raise DataError(f"{where}: {what} contains {found} value(s)")


def encode_labels(
    y: np.ndarray, task: str, *, what: str, where: str
) -> tuple[Task, np.ndarray, int | None, tuple[Label, ...] | None]:
    """Resolve ``task`` ("auto", "classification", "regression") and encode ``y`` for it.

    Returns ``(task, y, num_classes, classes)``: for classification ``y`` as int64 indices of shape ``(n,)``
    and ``classes`` the sorted original labels; for regression ``y`` as float of shape ``(n, d)`` and
    ``None, None``.
    """
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"{where}: {what} must have shape (n,) or (n, d), got {y.shape}")
    one_per_example = y.ndim == 1 or y.shape[1] == 1
    integral = y.dtype.kind in "biu" or bool(np.all(y == np.round(y)))
    if task == "auto":
        task = "classification" if one_per_example and integral else "regression"
    if task == "regression":
        return "regression", y.reshape(len(y), -1).astype(np.float64), None, None
    if not one_per_example:
        raise DataError(f"{where}: classification needs one label per example; {what} has shape {y.shape}")
    y = y.reshape(-1)
    if not integral:
        bad = y[y != np.round(y)][0].item()
        raise DataError(f"{where}: classification needs integer labels; {what} holds {bad!r}")
    values, encoded = np.unique(y, return_inverse=True)
    if len(values) == 1:  # (no labels at all is left to the split's "too few examples")
        only = y[0].item()
        raise DataError(f"{where}: classification needs 2 or more classes; every label in {what} is {only!r}")
    classes = tuple(int(v) for v in values)
    return "classification", encoded.reshape(-1).astype(np.int64), len(classes), classes


def split_user_data(
    x: np.ndarray, y: np.ndarray, cfg: NpzData | CsvData, *, where: str, x_name: str, y_name: str
) -> Dataset:
    """Validate ``(x, y)`` read from a user file and split it as ``cfg`` says.

    Args:
        x, y: the arrays as read, examples first.
        cfg: the data config (task, fractions, train size, seed).
        where: the file, for messages.
        x_name, y_name: how to name the arrays in messages (``"array 'x'"``, ``"column 'label'"``).
    """
    for a, what in ((x, x_name), (y, y_name)):
        if a.ndim == 0:
            raise DataError(f"{where}: {what} must have examples along its first axis, got a scalar")
        check_numeric(a, what, where)
        check_finite(a, what, where)
    if len(x) != len(y):
        raise DataError(f"{where}: {x_name} has {len(x)} examples but {y_name} has {len(y)}")
    if x.ndim == 1:
        x = x[:, None]
    task, y, num_classes, classes = encode_labels(y, cfg.task, what=y_name, where=where)
    return split_arrays(
        x.astype(np.float32),
        y,
        name=cfg.name,
        task=task,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        train_size=cfg.train_size,
        test_fraction=cfg.test_fraction,
        num_classes=num_classes,
        classes=classes,
        where=where,
    )
