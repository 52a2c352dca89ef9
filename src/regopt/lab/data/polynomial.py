"""Polynomial curve fitting (Bishop 2006, sec. 1.1): y = sin(2 pi x) + noise from a handful of points.

``x ~ U[0, 1]`` and ``y = sin(2 pi x) + N(0, noise^2)``, with ``train_size``, ``val_size`` and ``test_size``
points. The model sees the features ``x, x^2, ..., x^degree``, standardized with the mean and standard
deviation of the training points (population std, so the training features have mean 0 and std 1 exactly),
which keeps a degree-9 fit well conditioned for gradient descent. Targets have shape ``(n, 1)``.

Each split draws from its own stream, x and noise separately, so the validation and test points do not
depend on ``train_size`` and a larger training set extends a smaller one (same first points, new noise).

To draw the fit, evaluate the model on :func:`polynomial_curve` and plot against its raw x. The raw x of the
dataset's points is the first feature unstandardized: ``x = features[:, 0] * std[0] + mean[0]`` with
``mean, std = polynomial_statistics(cfg)``.

References:
    Bishop, C. M. (2006). Pattern Recognition and Machine Learning, section 1.1. Springer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from regopt.lab.config import PolynomialData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.splits import GENERATE, stream

_SPLITS = ("train", "val", "test")


def _sample(cfg: PolynomialData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(x, y)`` of one split, float64 arrays of shape ``(n,)``."""
    index = _SPLITS.index(split)
    size = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}[split]
    x = stream(cfg.seed, GENERATE, index, 0).uniform(0.0, 1.0, size)
    noise = cfg.noise * stream(cfg.seed, GENERATE, index, 1).standard_normal(size)
    return x, np.sin(2 * math.pi * x) + noise


def _powers(x: Tensor, degree: int) -> Tensor:
    return x.to(torch.float64).reshape(-1, 1) ** torch.arange(1, degree + 1, dtype=torch.float64)


def polynomial_features(x: Tensor, degree: int, mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
    """The powers ``x, x^2, ..., x^degree`` of a 1-D input, as float32 of shape ``(n, degree)``.

    Computed in float64; with ``mean`` and ``std`` (each of shape ``(degree,)``) the result is standardized,
    ``(x^k - mean[k-1]) / std[k-1]``.

    Example::

        >>> polynomial_features(torch.tensor([0.5, 2.0]), 3)
        tensor([[0.5000, 0.2500, 0.1250],
                [2.0000, 4.0000, 8.0000]])
    """
    powers = _powers(x, degree)
    if mean is not None:
        powers = powers - mean.to(torch.float64)
    if std is not None:
        powers = powers / std.to(torch.float64)
    return powers.to(torch.float32)


def polynomial_statistics(cfg: PolynomialData) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` of the raw training features, float64 of shape ``(degree,)``; a zero std (a single
    training point) is replaced by 1."""
    x_train, _ = _sample(cfg, "train")
    raw = _powers(torch.from_numpy(x_train), cfg.degree)
    mean, std = raw.mean(dim=0), raw.std(dim=0, correction=0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def load_polynomial(cfg: PolynomialData) -> Dataset:
    """The three splits with standardized polynomial features and ``(n, 1)`` targets."""
    mean, std = polynomial_statistics(cfg)
    arrays = {}
    for split in _SPLITS:
        x, y = _sample(cfg, split)
        arrays[split] = (polynomial_features(torch.from_numpy(x), cfg.degree, mean, std).numpy(), y[:, None])
    return Dataset.from_arrays(
        "polynomial", "regression", train=arrays["train"], val=arrays["val"], test=arrays["test"]
    )


def polynomial_curve(cfg: PolynomialData, num_points: int = 200) -> tuple[Tensor, Tensor, Tensor]:
    """The noise-free curve on a grid, for plotting a fit: ``(x_raw, features, y_true)``.

    Returns:
        x_raw: ``num_points`` evenly spaced points of [0, 1], shape ``(num_points,)``.
        features: their polynomial features, standardized with the training statistics of ``cfg``'s data
            (so ``model(features)`` is the fitted curve), shape ``(num_points, degree)``.
        y_true: ``sin(2 pi x_raw)``, shape ``(num_points, 1)``.

    Example::

        >>> from regopt.lab.config import PolynomialData
        >>> x, features, y = polynomial_curve(PolynomialData(name="polynomial", degree=3), num_points=5)
        >>> tuple(features.shape), tuple(y.shape)
        ((5, 3), (5, 1))
    """
    mean, std = polynomial_statistics(cfg)
    x_raw = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64)
    features = polynomial_features(x_raw, cfg.degree, mean, std)
    y_true = torch.sin(2 * math.pi * x_raw).reshape(-1, 1)
    return x_raw.to(torch.float32), features, y_true.to(torch.float32)
