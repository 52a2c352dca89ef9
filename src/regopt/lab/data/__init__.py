"""In-memory tensor datasets with deterministic train / validation / test splits.

:func:`load_dataset` turns a data config (:mod:`regopt.lab.config`) into a :class:`Dataset` of CPU
tensors: x float32 with examples first; classification y int64 of shape ``(n,)``; regression y float32 of
shape ``(n, d)``. Splits depend only on the config's ``seed`` (never on the global random state), and
``train_size`` subsamples the training split after validation is carved, so validation stays the same
whatever the training size. Bad data raises :class:`DataError` with one line naming the problem.

Example::

    >>> from regopt.lab.config import MoonsData
    >>> ds = load_dataset(MoonsData(name="moons", num_samples=500))
    >>> ds.input_shape, ds.output_dim, len(ds.x_train), len(ds.x_val), len(ds.x_test)
    ((2,), 2, 320, 80, 100)
"""

from regopt.lab.data.dataset import Dataset
from regopt.lab.data.errors import DataError
from regopt.lab.data.polynomial import polynomial_curve, polynomial_features, polynomial_statistics
from regopt.lab.data.preprocessing import PREPROCESSING, apply_preprocessing, write_preprocessing
from regopt.lab.data.registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "PREPROCESSING",
    "DataError",
    "Dataset",
    "apply_preprocessing",
    "load_dataset",
    "polynomial_curve",
    "polynomial_features",
    "polynomial_statistics",
    "write_preprocessing",
]
