"""Dataset names, descriptions and :func:`load_dataset`, which dispatches a data config to its loader."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regopt.lab.config import (
    CsvData,
    DigitsData,
    Mnist1dData,
    MoonsData,
    NpzData,
    PolynomialData,
    SpiralsData,
)
from regopt.lab.data.csvfile import load_csv
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.digits import load_digits
from regopt.lab.data.errors import DataError
from regopt.lab.data.mnist_1d import load_mnist1d
from regopt.lab.data.moons import load_moons
from regopt.lab.data.npz import load_npz
from regopt.lab.data.polynomial import load_polynomial
from regopt.lab.data.spirals import load_spirals

AnyDataConfig = Mnist1dData | DigitsData | MoonsData | SpiralsData | PolynomialData | NpzData | CsvData

_LOADERS: dict[str, tuple[Callable[[Any], Dataset], str]] = {
    "mnist1d": (load_mnist1d, "MNIST-1D, generated locally: 4000 train / 1000 test, 40 features, 10 classes"),
    "digits": (load_digits, "scikit-learn's bundled 8x8 handwritten digits: 1797 images, 10 classes"),
    "moons": (load_moons, "two interleaving half circles: 2-D inputs, 2 classes"),
    "spirals": (load_spirals, "interleaved spiral arms: 2-D inputs, one class per arm"),
    "polynomial": (load_polynomial, "1-D regression y = sin(2 pi x) + noise with polynomial features"),
    "npz": (load_npz, "your data: an .npz file with arrays x (examples first) and y"),
    "csv": (load_csv, "your data: a .csv file with a header row, one label column, numeric features"),
}

DATASETS: dict[str, str] = {name: description for name, (_, description) in _LOADERS.items()}
"""Dataset name -> one-line description (for ``regopt list``)."""


def load_dataset(cfg: AnyDataConfig) -> Dataset:
    """Load the dataset a data config names, split as it says, as CPU tensors.

    Example::

        >>> from regopt.lab.config import DigitsData
        >>> ds = load_dataset(DigitsData(name="digits", train_size=100))
        >>> ds.summary()
        'digits: classification, input (64,), 10 classes, train 100 / val 288 / test 359'

    Raises:
        DataError: a file that is missing, unreadable or malformed, or sizes the data cannot meet; the
            message is one line naming the file, array or column and the problem.
    """
    name = getattr(cfg, "name", None)
    if name not in _LOADERS:
        raise DataError(f"data.name: unknown dataset {name!r}; expected one of {', '.join(_LOADERS)}")
    loader, _ = _LOADERS[name]
    return loader(cfg)
