"""``regopt predict RUN_DIR --data FILE``: a trained run's predictions for the rows of a csv or npz file.

The file must have the layout of the run's training file:

- csv: a header with the run's feature columns (by name, in any order; the run's label column may be there too
  and is ignored); a run trained on an npz file (no column names) takes every column but the label column, as
  many as it has features. A missing column, a column the run was not trained on, or a count that differs is one
  line naming it.
- npz: an array ``x`` whose examples have the run's input shape (``y`` is ignored).

The output (written atomically) has one row per example, in the file's order: for classification one
probability per class, ``p_<label>`` (the softmax of the model's output, in float64, summing to 1), then
``predicted``, the label of the most probable class; for regression ``predicted`` (``predicted_<j>`` for a
target of several values).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regopt.lab.atomic import write_csv
from regopt.lab.best_weights import BEST
from regopt.lab.data import DataError
from regopt.lab.data.csvfile import parse_cells, read_rows
from regopt.lab.data.identity import existing_file
from regopt.lab.data.npz import read_npz_arrays
from regopt.lab.data.userdata import check_finite
from regopt.lab.load_run import Preprocess, Weights, load_run, prediction

_BATCH = 4096


@dataclass
class Predictions:
    """What :func:`predict` computed: the rows written and the weights used."""

    columns: list[str]
    rows: list[dict[str, Any]]
    weights: str
    """``"best.pt"`` or ``"checkpoint.pt"``."""


def read_csv_inputs(path: Path, prep: Preprocess, label_column: str | None) -> np.ndarray:
    """The feature matrix of a csv file, its columns in the run's order; :class:`DataError` on a mismatch."""
    header, rows, lines = read_rows(path)
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DataError(f"{path}: column {duplicated[0]!r} appears {header.count(duplicated[0])} times in the header")
    others = [name for name in header if name != label_column]
    if prep.features is not None:
        trained = ", ".join(prep.features)
        for name in prep.features:
            if name not in header:
                raise DataError(f"{path}: no column {name!r}; the run was trained on columns {trained}")
        for name in others:
            if name not in prep.features:
                raise DataError(f"{path}: column {name!r} is not one the run was trained on ({trained})")
        names = list(prep.features)
    else:
        if len(prep.input_shape) != 1:
            raise DataError(f"{path}: the run was trained on examples of shape {prep.input_shape}; use an npz file")
        if len(others) != prep.input_shape[0]:
            raise DataError(f"{path}: {len(others)} feature columns; the run was trained on {prep.input_shape[0]}")
        names = others
    index = [header.index(name) for name in names]
    return parse_cells([[row[j] for j in index] for row in rows], lines, names, path)


def read_npz_inputs(path: Path, prep: Preprocess) -> np.ndarray:
    """The array ``x`` of an npz file, checked against the run's input shape."""
    (x,) = read_npz_arrays(path, ("x",))
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[1:] != prep.input_shape:
        raise DataError(
            f"{path}: array 'x' has examples of shape {x.shape[1:]}; the run was trained on examples of shape "
            f"{prep.input_shape}"
        )
    return x


def read_inputs(path: str | Path, prep: Preprocess, label_column: str | None = None) -> np.ndarray:
    """A csv or npz file's inputs in the run's layout (numeric and finite), not yet preprocessed."""
    path = existing_file(Path(path))
    if path.suffix.lower() not in (".csv", ".npz"):
        raise DataError(f"{path}: expected a .csv or .npz file")
    x = read_csv_inputs(path, prep, label_column) if path.suffix.lower() == ".csv" else read_npz_inputs(path, prep)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: the inputs are not numeric (dtype {x.dtype})")
    check_finite(x, "the inputs", str(path))
    if len(x) == 0:
        raise DataError(f"{path}: no examples")
    return x


def _columns(prep: Preprocess) -> list[str]:
    if prep.task == "classification":
        assert prep.classes is not None
        return [*(f"p_{label}" for label in prep.classes), "predicted"]
    return ["predicted"] if prep.output_dim == 1 else [f"predicted_{j}" for j in range(prep.output_dim)]


def predict(run_dir: str | Path, data: str | Path, *, weights: Weights = "auto") -> Predictions:
    """The run's predictions for every example of ``data`` (see the module docstring); nothing is written."""
    model, prep, config = load_run(run_dir, weights=weights)
    x = read_inputs(data, prep, getattr(config.data, "label_column", None))
    inputs = prep(x)
    with torch.no_grad():
        outputs = torch.cat([prediction(model(inputs[i : i + _BATCH])) for i in range(0, len(inputs), _BATCH)])
    columns = _columns(prep)
    rows: list[dict[str, Any]] = []
    if prep.task == "classification":
        assert prep.classes is not None
        probabilities = torch.softmax(outputs.double(), dim=1).numpy()
        for p in probabilities:
            row: dict[str, Any] = {column: repr(float(v)) for column, v in zip(columns, p, strict=False)}
            row["predicted"] = prep.classes[int(np.argmax(p))]
            rows.append(row)
    else:
        rows = [{c: repr(float(v)) for c, v in zip(columns, out, strict=True)} for out in outputs.double().numpy()]
    used = BEST if (Path(run_dir) / BEST).is_file() and weights != "final" else "checkpoint.pt"
    return Predictions(columns, rows, used)


def write_predictions(predictions: Predictions, out: str | Path) -> Path:
    """Write the rows to ``out`` as csv, atomically; :class:`DataError` (one line) if it cannot be written."""
    if Path(out).is_dir():
        raise DataError(f"{out}: is a directory; --out takes the csv file to write")
    try:
        write_csv(out, predictions.rows, predictions.columns)
    except OSError as err:
        raise DataError(f"{out}: cannot write ({err.strerror or err})") from None
    return Path(out)


__all__ = ["Predictions", "predict", "read_inputs", "write_predictions"]
