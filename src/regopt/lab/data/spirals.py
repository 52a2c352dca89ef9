"""Interleaved spiral arms: 2-D inputs, one balanced class per arm (after the CS231n toy data).

Arm ``k`` of ``K`` is the curve ``r = t``, ``theta = 2 pi k / K + 3 pi t`` for ``t`` in [0, 1]: the radius
grows with the angle through one and a half turns, and the arms start evenly spaced around the circle. Each
point draws ``t ~ U[0, 1]`` and ``noise * N(0, 1)`` radians of angular jitter, so ``noise`` blurs the arms
into each other most where they are closest, near the centre.
"""

from __future__ import annotations

import math

import numpy as np

from regopt.lab.config import SpiralsData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.splits import GENERATE, split_arrays, stream

TURN = 1.5
"""Turns of each arm."""


def make_spirals(
    num_samples: int, num_classes: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``num_samples`` float32 points in the plane and their int64 arm; class sizes differ by at
    most one."""
    y = np.arange(num_samples, dtype=np.int64) % num_classes
    t = rng.uniform(0.0, 1.0, num_samples)
    theta = 2 * math.pi * y / num_classes + 2 * math.pi * TURN * t + noise * rng.standard_normal(num_samples)
    x = np.stack([t * np.cos(theta), t * np.sin(theta)], axis=1).astype(np.float32)
    return x, y


def load_spirals(cfg: SpiralsData) -> Dataset:
    """``num_classes`` spirals of ``num_samples`` points in all, then stratified test/validation splits."""
    x, y = make_spirals(cfg.num_samples, cfg.num_classes, cfg.noise, stream(cfg.seed, GENERATE))
    return split_arrays(
        x,
        y,
        name="spirals",
        task="classification",
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        train_size=cfg.train_size,
        test_fraction=cfg.test_fraction,
        num_classes=cfg.num_classes,
    )
