"""The :class:`Dataset` record: train, validation and test tensors of one task, with conventions checked."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from regopt.lab.data.errors import DataError

Task = Literal["classification", "regression"]
Label = int | float | str


@dataclass(frozen=True, eq=False)
class Dataset:
    """Three in-memory splits of one supervised task.

    Conventions (checked on construction): ``x`` is float32 with examples first; for classification ``y``
    is int64 of shape ``(n,)`` holding class indices ``0..num_classes-1``; for regression ``y`` is float32
    of shape ``(n, d)``, 2-D so that an MSE against a model output of shape ``(n, d)`` broadcasts as meant.

    Attributes:
        name: the dataset's name (``"digits"``, ``"npz"``, ...).
        task: ``"classification"`` or ``"regression"``.
        x_train, y_train, x_val, y_val, x_test, y_test: the splits.
        num_classes: number of classes; ``None`` for regression.
        classes: for classification, the original label of each class index (``classes[k]`` is the label
            that was encoded as ``k``, e.g. ``(-1, 1)`` for a file labelled -1/+1); ``None`` for regression.
            Defaults to ``(0, 1, ..., num_classes - 1)``. Text labels keep their text (``"setosa"``).
        notes: what loading decided on the user's behalf, one sentence each (which task ``"auto"`` chose and
            why, whether features were standardized), for the console and summary.json.
        preprocessing: for user files, how the file became these tensors, JSON-serializable (source path and
            sha256, feature names, class names, standardization statistics); see
            :mod:`regopt.lab.data.preprocessing`. ``None`` for built-in datasets.
        image_shape: ``(channels, height, width)`` of one example when the inputs are images, also when they are
            stored flat (the digits as 64-vectors: ``(1, 8, 8)``); by default the input shape of 3-D inputs,
            ``None`` for others. Image augmentation reshapes by it.

    Example::

        >>> import torch
        >>> x, y = torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])
        >>> ds = Dataset("toy", "classification", x, y, x, y, x, y, num_classes=2)
        >>> ds.input_shape, ds.output_dim
        ((3,), 2)
    """

    name: str
    task: Task
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int | None
    classes: tuple[Label, ...] | None = None
    notes: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] | None = None
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.image_shape is None and len(self.input_shape) == 3:
            object.__setattr__(self, "image_shape", self.input_shape)
        if self.image_shape is not None and math.prod(self.image_shape) != math.prod(self.input_shape):
            raise DataError(
                f"{self.name}: image_shape {self.image_shape} does not hold inputs of shape {self.input_shape}"
            )
        if self.task == "classification":
            if self.num_classes is None or self.num_classes < 1:
                raise DataError(f"{self.name}: classification needs num_classes >= 1, got {self.num_classes}")
            if self.classes is None:
                object.__setattr__(self, "classes", tuple(range(self.num_classes)))
            elif len(self.classes) != self.num_classes:
                raise DataError(f"{self.name}: {len(self.classes)} class labels for num_classes={self.num_classes}")
        elif self.task == "regression":
            if self.num_classes is not None or self.classes is not None:
                raise DataError(f"{self.name}: regression takes num_classes=None and classes=None")
        else:
            raise DataError(f"{self.name}: unknown task {self.task!r}; expected classification or regression")
        for split, x, y in self._splits():
            self._check_split(split, x, y)

    def _splits(self) -> list[tuple[str, Tensor, Tensor]]:
        return [
            ("train", self.x_train, self.y_train),
            ("val", self.x_val, self.y_val),
            ("test", self.x_test, self.y_test),
        ]

    def _check_split(self, split: str, x: Tensor, y: Tensor) -> None:
        where = f"{self.name}: {split} split"
        if x.dtype != torch.float32 or x.ndim < 2:
            raise DataError(f"{where}: x must be float32 with examples first, got {x.dtype} {tuple(x.shape)}")
        if x.shape[1:] != self.x_train.shape[1:]:
            raise DataError(f"{where}: x has shape {tuple(x.shape)}, train has {tuple(self.x_train.shape)}")
        if len(x) != len(y):
            raise DataError(f"{where}: x has {len(x)} examples but y has {len(y)}")
        got = f"got {y.dtype} {tuple(y.shape)}"
        if self.task == "classification" and (y.dtype != torch.int64 or y.ndim != 1):
            raise DataError(f"{where}: classification y must be int64 of shape (n,), {got}")
        if self.task == "regression" and (y.dtype != torch.float32 or y.ndim != 2):
            raise DataError(f"{where}: regression y must be float32 of shape (n, d), {got}")

    @classmethod
    def from_arrays(
        cls,
        name: str,
        task: Task,
        *,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        test: tuple[np.ndarray, np.ndarray],
        num_classes: int | None = None,
        classes: tuple[Label, ...] | None = None,
    ) -> Dataset:
        """Build a dataset from numpy ``(x, y)`` pairs, copying them into CPU tensors of the conventional
        dtypes (x float32; y int64 ``(n,)`` for classification, float32 ``(n, d)`` for regression, a 1-D
        regression target becoming ``(n, 1)``)."""

        def x_tensor(x: np.ndarray) -> Tensor:
            return torch.from_numpy(np.array(x, dtype=np.float32, order="C"))

        def y_tensor(y: np.ndarray) -> Tensor:
            if task == "classification":
                return torch.from_numpy(np.array(y, dtype=np.int64, order="C").reshape(-1))
            y = np.array(y, dtype=np.float32, order="C")
            return torch.from_numpy(y.reshape(len(y), -1) if y.ndim == 1 else y)

        (xa, ya), (xb, yb), (xc, yc) = train, val, test
        return cls(
            name,
            task,
            x_tensor(xa),
            y_tensor(ya),
            x_tensor(xb),
            y_tensor(yb),
            x_tensor(xc),
            y_tensor(yc),
            num_classes=num_classes,
            classes=classes,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, ``x_train.shape[1:]``."""
        return tuple(self.x_train.shape[1:])

    @property
    def output_dim(self) -> int:
        """Width of the model output: ``num_classes``, or the target width ``y_train.shape[1]``."""
        if self.task == "classification":
            assert self.num_classes is not None
            return self.num_classes
        return int(self.y_train.shape[1])

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device`` (the tensors themselves are shared when already there)."""
        fields = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        return dataclasses.replace(self, **{f: getattr(self, f).to(device) for f in fields})

    def summary(self) -> str:
        """One line: name, task, input shape, output size and the size of each split."""
        if self.task == "classification":
            out = f"{self.num_classes} classes"
        else:
            out = f"{self.output_dim} target" + ("s" if self.output_dim != 1 else "")
        return (
            f"{self.name}: {self.task}, input {self.input_shape}, {out}, "
            f"train {len(self.x_train)} / val {len(self.x_val)} / test {len(self.x_test)}"
        )

    def __repr__(self) -> str:
        return f"Dataset({self.summary()}, device={self.x_train.device})"
