"""MNIST-1D (Greydanus & Kobak 2020), generated locally and cached in-process.

The 5000-example default gives the paper's 4000 train / 1000 test examples of 40 features and 10 classes;
validation is carved from the 4000. The data is made with ``mnist1d.data.make_dataset`` (never
``get_dataset``, which downloads), whose seeding of the global ``random`` and ``numpy.random`` generators is
undone, so loading MNIST-1D leaves the caller's random state exactly as it was.

References:
    Greydanus, S. & Kobak, D. (2020). Scaling down deep learning with MNIST-1D. arXiv:2011.14439.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

from regopt.lab.config import Mnist1dData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.errors import DataError
from regopt.lab.data.splits import split_arrays

NUM_CLASSES = 10


@lru_cache(maxsize=4)
def generate(num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, x_test, y_test)`` of MNIST-1D (read-only arrays, cached): ``num_samples // 10`` examples
    per class, 80% of them in ``x``, shuffled.

    The global ``random`` and ``numpy.random`` states are saved and restored around the generator.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = (data["x"], data["y"], data["x_test"], data["y_test"])
    for a in arrays:
        a.setflags(write=False)
    return arrays


def load_mnist1d(cfg: Mnist1dData) -> Dataset:
    """MNIST-1D with validation carved from its training split; ``as_sequence`` shapes examples (40, 1)."""
    if cfg.num_samples < NUM_CLASSES:
        raise DataError(f"data.num_samples: {cfg.num_samples} is too few for mnist1d; need at least {NUM_CLASSES}")
    x, y, x_test, y_test = generate(cfg.num_samples)
    if cfg.as_sequence:
        x, x_test = x[..., None], x_test[..., None]
    return split_arrays(
        x,
        y.astype(np.int64),
        name="mnist1d",
        task="classification",
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        train_size=cfg.train_size,
        test=(x_test, y_test),
        num_classes=NUM_CLASSES,
    )
