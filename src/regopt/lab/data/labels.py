"""Targets of user data encoded for a task, and the rule by which ``task = "auto"`` picks the task.

The rule (also in :class:`regopt.lab.config.FileData`): text labels are classes; one integer per example with
at most :data:`~regopt.lab.schema.data.AUTO_MAX_CLASSES` (50) distinct values, each seen at least twice, are
classes; anything else is regression. 50 is above the class count of common tabular sets (iris 3, wine 3,
digits 10) and well below the distinct values of an integer measurement (scikit-learn's diabetes target has
214 in 442 examples); a value seen once cannot be both learned and evaluated, so it does not make a class.
Each choice comes with a note that says what was chosen, why, and how to override it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regopt.lab.data.dataset import Label, Task
from regopt.lab.data.errors import DataError
from regopt.lab.schema.data import AUTO_MAX_CLASSES

TEXT_KINDS = "US"  # numpy str and bytes


@dataclass(frozen=True)
class EncodedLabels:
    """Labels ready for a :class:`~regopt.lab.data.dataset.Dataset`.

    Attributes:
        task: the task resolved from ``"auto"`` or as given.
        y: int64 class indices of shape ``(n,)`` (classification) or float64 ``(n, d)`` (regression).
        num_classes, classes: the class count and the original label of each index (``None`` for regression).
        note: why ``"auto"`` chose the task; ``None`` when the task was given.
    """

    task: Task
    y: np.ndarray
    num_classes: int | None
    classes: tuple[Label, ...] | None
    note: str | None


def as_text(y: np.ndarray, what: str, where: str) -> np.ndarray:
    """Text labels as a numpy ``str`` array (bytes decoded as UTF-8)."""
    if y.dtype.kind == "S":
        try:
            return np.char.decode(y, "utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: {what} holds bytes that are not UTF-8 text: {err}") from None
    return y


def auto_task(y: np.ndarray, what: str) -> tuple[Task, str]:
    """The task ``"auto"`` picks for labels ``y`` (2-D is ``(n, d)``), with the note that says why."""
    if y.dtype.kind in TEXT_KINDS:
        return "classification", f"task 'auto' chose classification: {what} holds text labels"
    if y.ndim == 2 and y.shape[1] != 1:
        return "regression", f"task 'auto' chose regression: {what} has {y.shape[1]} values per example"
    y = y.reshape(-1)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        example = y[y != np.round(y)][0].item()
        return "regression", f"task 'auto' chose regression: {what} holds values that are not all integers ({example})"
    values, counts = np.unique(y, return_counts=True)
    rule = f"classification needs at most {AUTO_MAX_CLASSES}, each seen at least twice"
    if len(values) > AUTO_MAX_CLASSES:
        return "regression", (
            f"task 'auto' chose regression: {what} has {len(values)} distinct integer values ({rule}); "
            'set data.task = "classification" to override'
        )
    once = int(np.sum(counts == 1))
    if once:
        return "regression", (
            f"task 'auto' chose regression: {what} has {len(values)} distinct integer values, {once} of them "
            f'seen only once ({rule}); set data.task = "classification" to override'
        )
    return "classification", (
        f"task 'auto' chose classification: {what} has {len(values)} distinct integer values, each seen at least "
        f'twice; set data.task = "regression" to override'
    )


def encode_labels(y: np.ndarray, task: str, *, what: str, where: str) -> EncodedLabels:
    """Resolve ``task`` ("auto", "classification", "regression") and encode ``y`` for it.

    Classification labels become indices ``0..K-1`` in sorted order (numbers by value, text by code point),
    with the original labels kept as ``classes``; regression targets become float ``(n, d)``.
    """
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"{where}: {what} must have shape (n,) or (n, d), got {y.shape}")
    y = as_text(y, what, where)
    text = y.dtype.kind in TEXT_KINDS
    note = None
    if task == "auto":
        task, note = auto_task(y, what)
    if task == "regression":
        if text:
            raise DataError(f"{where}: {what} holds text ({y.reshape(-1)[0].item()!r}); regression needs numbers")
        return EncodedLabels("regression", y.reshape(len(y), -1).astype(np.float64), None, None, note)
    if y.ndim == 2 and y.shape[1] != 1:
        raise DataError(f"{where}: classification needs one label per example; {what} has shape {y.shape}")
    y = y.reshape(-1)
    if not text and y.dtype.kind == "f" and not np.all(y == np.round(y)):
        bad = y[y != np.round(y)][0].item()
        raise DataError(f"{where}: classification needs integer labels; {what} holds {bad!r}")
    values, encoded = np.unique(y, return_inverse=True)
    if len(values) == 1:  # (no labels at all is left to the split's "too few examples")
        only = y[0].item()
        raise DataError(f"{where}: classification needs 2 or more classes; every label in {what} is {only!r}")
    classes: tuple[Label, ...] = tuple(str(v) for v in values) if text else tuple(int(v) for v in values)
    if note is not None:
        note += f" ({len(classes)} classes)" if text else ""
    return EncodedLabels("classification", encoded.reshape(-1).astype(np.int64), len(classes), classes, note)
