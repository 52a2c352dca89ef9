"""scikit-learn's bundled 8x8 handwritten digits (Alpaydin & Kaynak 1998): 1797 images, 10 classes.

Loaded with ``sklearn.datasets.load_digits`` (shipped with scikit-learn, no download); pixels are scaled
from 0..16 to [0, 1]. The test split is stratified by class.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from regopt.lab.config import DigitsData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.splits import split_arrays

NUM_CLASSES = 10


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_digits(cfg: DigitsData) -> Dataset:
    """The digits as 64-vectors, or as ``(1, 8, 8)`` images with ``image=True``."""
    x, y = _arrays()
    if cfg.image:
        x = x.reshape(-1, 1, 8, 8)
    data = split_arrays(
        x,
        y,
        name="digits",
        task="classification",
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        train_size=cfg.train_size,
        test_fraction=cfg.test_fraction,
        num_classes=NUM_CLASSES,
    )
    return dataclasses.replace(data, image_shape=(1, 8, 8))  # 8x8 images, also when stored as 64-vectors
