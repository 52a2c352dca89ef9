"""User data from an ``.npz`` archive holding ``x`` (examples first, any trailing shape) and ``y``.

Save one with ``numpy.savez("data.npz", x=x, y=y)``. A 1-D ``x`` is one feature per example; ``y`` is
``(n,)`` or ``(n, d)``, numbers or text labels (``np.array(["setosa", ...])``, classes in sorted order). The
archive is read without pickle (object arrays are refused). Images are ``x`` of shape ``(n, C, H, W)``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from regopt.lab.config import NpzData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.errors import DataError
from regopt.lab.data.identity import check_source, existing_file
from regopt.lab.data.userdata import split_user_data


def read_npz_arrays(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file, or a :class:`DataError` naming the file (and a missing array)."""
    path = existing_file(Path(path))
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read as .npz: {err}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        wanted = " and ".join(repr(key) for key in keys)
        raise DataError(f"{path}: a single .npy array, expected an .npz archive with arrays {wanted}")
    with archive:
        found = list(archive.files)
        arrays = []
        for key in keys:
            if key not in found:
                names = ", ".join(repr(k) for k in found) or "none"
                raise DataError(f"{path}: no array {key!r} in the archive (arrays found: {names})")
            try:
                arrays.append(archive[key])
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: cannot read array {key!r}: {err}") from None
    return arrays


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``x`` and ``y`` of an ``.npz`` file, or a :class:`DataError` naming the file."""
    x, y = read_npz_arrays(path, ("x", "y"))
    return x, y


def load_npz(cfg: NpzData) -> Dataset:
    """Read, check and split an ``.npz`` file (see :mod:`regopt.lab.data.userdata` for the checks)."""
    source = check_source(cfg)
    x, y = read_npz(cfg.path)
    where = str(cfg.path)
    return split_user_data(x, y, cfg, where=where, x_name="array 'x'", y_name="array 'y'", source=source)
