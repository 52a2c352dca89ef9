"""What turned a user's file into model inputs, saved as ``preprocessing.json`` in the run directory.

A trained model expects its inputs as they were during training. For a user file (``csv``/``npz``)
:attr:`Dataset.preprocessing <regopt.lab.data.dataset.Dataset.preprocessing>` records::

    source        {"path": absolute path, "sha256": hex digest of the file}
    task          "classification" or "regression"
    features      the feature column names (csv), or null (npz)
    input_shape   the shape of one example
    output_dim    the width of the model's output: the class count, or the regression target's width (absent
                  from run directories written before issue 17)
    classes       the original label of each class index (numbers or text), or null for regression
    standardize   {"mean", "std", "constant_features"} with mean and std of the example shape, or null

To prepare new inputs: ``x = (x_raw - mean) / std`` (:func:`apply_preprocessing`); model output index ``k``
is the class ``classes[k]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from regopt.lab.atomic import write_text
from regopt.lab.data.dataset import Dataset

PREPROCESSING = "preprocessing.json"


def write_preprocessing(dataset: Dataset, run_dir: Path) -> Path | None:
    """Write ``dataset.preprocessing`` to ``run_dir/preprocessing.json`` atomically and return its path;
    ``None`` (nothing written) when the dataset has none (built-in datasets)."""
    if dataset.preprocessing is None:
        return None
    path = Path(run_dir) / PREPROCESSING  # write_text makes the directory
    write_text(path, json.dumps(dataset.preprocessing, indent=2, allow_nan=False) + "\n")
    return path


def apply_preprocessing(x: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Raw inputs ``x`` (examples first) prepared as the model saw them in training: float32, standardized
    with the saved statistics if the run standardized.

    Example::

        >>> prep = {"standardize": {"mean": [1.0, 10.0], "std": [2.0, 1.0], "constant_features": 0}}
        >>> apply_preprocessing(np.array([[3.0, 10.0]]), prep).tolist()
        [[1.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    stats = preprocessing.get("standardize")
    if stats is not None:
        x = (x - np.asarray(stats["mean"])) / np.asarray(stats["std"])
    return x.astype(np.float32)
