"""Two interleaving half circles (scikit-learn's ``make_moons``): 2-D inputs, 2 balanced classes."""

from __future__ import annotations

import numpy as np

from regopt.lab.config import MoonsData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.splits import split_arrays


def load_moons(cfg: MoonsData) -> Dataset:
    """``make_moons(num_samples, noise=noise, random_state=seed)``, then stratified test/validation splits.

    ``noise`` is the standard deviation of Gaussian noise added to each coordinate (the moons have radius 1).
    """
    from sklearn.datasets import make_moons

    x, y = make_moons(cfg.num_samples, noise=cfg.noise, random_state=cfg.seed % 2**32)
    return split_arrays(
        x.astype(np.float32),
        y.astype(np.int64),
        name="moons",
        task="classification",
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        train_size=cfg.train_size,
        test_fraction=cfg.test_fraction,
        num_classes=2,
    )
