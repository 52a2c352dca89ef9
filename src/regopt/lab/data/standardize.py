"""Standardize features with the training split's statistics: x' = (x - mean) / std, feature by feature.

The mean and the (population) standard deviation come from the training split only, so nothing about the
validation or test examples leaks into training; the same shift and scale are applied to all three splits.
A feature that is constant on the training split is only centred (its std is taken as 1), never divided by
zero. "Feature" is one entry of an example: a column of tabular data, one pixel position of an image.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from regopt.lab.data.dataset import Dataset


def training_statistics(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, std, constant)`` per feature of ``x_train`` in float64; ``std`` is 1 where ``constant``."""
    x = x_train.double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False) if len(x) > 1 else torch.zeros_like(mean)
    constant = x.amax(0) == x.amin(0)
    return mean, torch.where(constant, torch.ones_like(std), std), constant


def standardize(ds: Dataset) -> tuple[Dataset, dict[str, Any]]:
    """``ds`` with every split standardized by the training split's statistics, and those statistics as
    JSON-serializable data: ``{"mean": ..., "std": ..., "constant_features": k}`` (``mean`` and ``std``
    nested lists of the example shape)."""
    mean, std, constant = training_statistics(ds.x_train)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - mean) / std).float()

    out = dataclasses.replace(ds, x_train=apply(ds.x_train), x_val=apply(ds.x_val), x_test=apply(ds.x_test))
    stats = {"mean": mean.tolist(), "std": std.tolist(), "constant_features": int(constant.sum())}
    return out, stats
