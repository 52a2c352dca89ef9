"""The one error type of :mod:`regopt.lab.data`."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used: the message is one line naming what is wrong and where.

    "Where" is a file path, a column, an array or a config key, e.g.
    ``data.path: no such file: runs/train.csv`` or ``data.npz: x has 100 examples but y has 99``.
    """
