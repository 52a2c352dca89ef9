"""Checks shared by user data files (``npz``, ``csv``): numeric, finite, matching lengths, then labels
encoded for the task (:mod:`regopt.lab.data.labels`), the usual splits, and standardization with the
training split's statistics (:mod:`regopt.lab.data.standardize`).

Every decision taken on the user's behalf (the task ``"auto"`` chose, whether features were standardized) is
one sentence in :attr:`Dataset.notes`; how to reproduce the inputs is in :attr:`Dataset.preprocessing`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from regopt.lab.config import CsvData, NpzData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.errors import DataError
from regopt.lab.data.identity import existing_file
from regopt.lab.data.labels import TEXT_KINDS, encode_labels
from regopt.lab.data.splits import split_arrays
from regopt.lab.data.standardize import standardize

__all__ = ["check_finite", "check_numeric", "count_nonfinite", "existing_file", "split_user_data"]

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integer, float


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


def split_user_data(
    x: np.ndarray,
    y: np.ndarray,
    cfg: NpzData | CsvData,
    *,
    where: str,
    x_name: str,
    y_name: str,
    source: dict[str, str],
    features: list[str] | None = None,
) -> Dataset:
    """Validate ``(x, y)`` read from a user file, split it as ``cfg`` says, and standardize it if asked.

    Args:
        x, y: the arrays as read, examples first; ``y`` may hold text labels (classification).
        cfg: the data config (task, standardize, fractions, train size, seed).
        where: the file, for messages.
        x_name, y_name: how to name the arrays in messages (``"array 'x'"``, ``"column 'label'"``).
        source: the file's path and sha256 (:func:`regopt.lab.data.identity.check_source`), for
            :attr:`Dataset.preprocessing`.
        features: the feature names (csv columns), if the file has them.
    """
    for a, what in ((x, x_name), (y, y_name)):
        if a.ndim == 0:
            raise DataError(f"{where}: {what} must have examples along its first axis, got a scalar")
        if a is y and a.dtype.kind in TEXT_KINDS:
            continue  # text labels: classes (checked in encode_labels)
        check_numeric(a, what, where)
        check_finite(a, what, where)
    if len(x) != len(y):
        raise DataError(f"{where}: {x_name} has {len(x)} examples but {y_name} has {len(y)}")
    if x.ndim == 1:
        x = x[:, None]
    labels = encode_labels(y, cfg.task, what=y_name, where=where)
    ds = split_arrays(
        x.astype(np.float32),
        labels.y,
        name=cfg.name,
        task=labels.task,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        train_size=cfg.train_size,
        test_fraction=cfg.test_fraction,
        num_classes=labels.num_classes,
        classes=labels.classes,
        where=where,
    )
    notes = [labels.note] if labels.note else []
    tabular = x.ndim == 2
    stats = None
    if cfg.standardize or (cfg.standardize is None and tabular):
        ds, stats = standardize(ds)
        count = int(np.prod(ds.input_shape))
        notes.append(f"standardized {count} features with training-split statistics (mean 0, std 1)")
    elif cfg.standardize is None:
        notes.append(
            f"features not standardized: x has shape {x.shape} (images or sequences); "
            "set data.standardize = true for per-entry training-split statistics"
        )
    else:
        notes.append("features not standardized (data.standardize = false)")
    preprocessing = {
        "source": source,
        "task": ds.task,
        "features": features,
        "input_shape": list(ds.input_shape),
        "output_dim": ds.output_dim,
        "classes": list(ds.classes) if ds.classes is not None else None,
        "standardize": stats,
    }
    return dataclasses.replace(ds, notes=notes, preprocessing=preprocessing)
