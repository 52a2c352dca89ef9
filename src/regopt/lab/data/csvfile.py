"""User data from a ``.csv`` file: a header row, then one example a row.

``label_column`` is the target; every other column is a feature. Feature values must be numbers, parsed as
Python floats (``1``, ``-2.5e3``, ``nan``, ``inf``). The label column holds numbers, or text labels
(``setosa``), which become classes in sorted order with their names kept; a column mixing the two is refused.
Blank lines are skipped. A file of finite numbers only is read by numpy's C parser (``np.loadtxt``); any other
file (text labels, a bad cell, a ragged row, NaN or Inf) is read row by row with the standard ``csv`` module,
which names the line and column of what is wrong, at about 7x the time and 10x the memory
(``benchmarks/csv_loading.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from regopt.lab.config import CsvData
from regopt.lab.data.dataset import Dataset
from regopt.lab.data.errors import DataError
from regopt.lab.data.identity import check_source, existing_file
from regopt.lab.data.userdata import count_nonfinite, split_user_data


def parse_cells(rows: list[list[str]], lines: list[int], header: list[str], path: Path) -> np.ndarray:
    """The cells as a float64 matrix, or a :class:`DataError` naming the line and column of a bad cell."""
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    except ValueError:
        pass  # find the offending cell (numpy and float() differ on a few spellings; float() decides)
    out = np.empty((len(rows), len(header)))
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        for j, cell in enumerate(row):
            try:
                out[i, j] = float(cell)
            except ValueError:
                only = "features must be numbers; only the label column may hold text"
                problem = "empty value" if not cell.strip() else f"not a number: {cell!r} ({only})"
                raise DataError(f"{path}: line {line}, column {header[j]!r}: {problem}") from None
    return out


def read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """``(header, rows, lines)`` of a CSV file: the stripped column names, the non-blank rows (each checked
    to have one field per column) and the line number of each row."""
    path = existing_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows, lines = [], []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read as CSV: {err}") from None
    if header is None:
        raise DataError(f"{path}: empty file, expected a header row")
    header = [name.strip() for name in header]
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
    return header, rows, lines


def _labels(cells: list[str], lines: list[int], label: str, path: Path) -> np.ndarray:
    """The label column as float64 numbers, or as text when no cell is a number."""
    for cell, line in zip(cells, lines, strict=True):
        if not cell.strip():
            raise DataError(f"{path}: line {line}, column {label!r}: empty value")
    numbers: list[float | None] = []
    for cell in cells:
        try:
            numbers.append(float(cell))
        except ValueError:
            numbers.append(None)
    if all(v is not None for v in numbers):
        return np.array(numbers, dtype=np.float64)
    if any(v is not None for v in numbers):
        i = numbers.index(None) if numbers[0] is not None else next(k for k, v in enumerate(numbers) if v is not None)
        raise DataError(
            f"{path}: column {label!r} mixes numbers and text (line {lines[i]}: {cells[i].strip()!r}); "
            "labels must be all numbers or all text"
        )
    return np.array([cell.strip() for cell in cells], dtype=str)


def _finite_numbers(path: Path, columns: int) -> np.ndarray | None:
    """The file below its header as a float64 matrix when every row holds ``columns`` finite numbers, read by
    numpy's C parser; ``None`` for anything else, which the row-by-row reader then reads and explains."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": the careful path says it better
            x = np.loadtxt(path, delimiter=",", skiprows=1, comments=None, quotechar='"', encoding="utf-8-sig", ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    return x if x.shape[1] == columns and len(x) and np.isfinite(x).all() else None


def _header(path: Path) -> list[str] | None:
    try:
        with existing_file(path).open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None if header is None else [name.strip() for name in header]


def _read_numbers_fast(path: Path, label: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """``(features, labels, feature names)`` of a well-formed all-number file, or ``None``."""
    header = _header(path)
    if header is None or len(header) < 2 or header.count(label) != 1:
        return None
    matrix = _finite_numbers(path, len(header))
    if matrix is None:
        return None
    j = header.index(label)
    return np.delete(matrix, j, axis=1), matrix[:, j].copy(), header[:j] + header[j + 1 :]


def load_csv(cfg: CsvData) -> Dataset:
    """Read, check and split a CSV file (see :mod:`regopt.lab.data.userdata` for the checks)."""
    source = check_source(cfg)
    path = Path(cfg.path)
    fast = _read_numbers_fast(path, cfg.label_column)
    if fast is not None:
        x, y, names = fast
        return split_user_data(
            x,
            y,
            cfg,
            where=str(path),
            x_name="features",
            y_name=f"column {cfg.label_column!r}",
            source=source,
            features=names,
        )
    header, rows, lines = read_rows(path)
    label = cfg.label_column
    if label not in header:
        found = ", ".join(repr(name) for name in header)
        raise DataError(f"{path}: no label column {label!r} (columns found: {found})")
    if header.count(label) > 1:
        raise DataError(f"{path}: label column {label!r} appears {header.count(label)} times in the header")
    if len(header) < 2:
        raise DataError(f"{path}: no feature columns besides the label column {label!r}")
    j = header.index(label)
    names = header[:j] + header[j + 1 :]
    x = parse_cells([row[:j] + row[j + 1 :] for row in rows], lines, names, path)
    y = _labels([row[j] for row in rows], lines, label, path)
    for k, name in enumerate(header):
        column = y if k == j else x[:, k - (k > j)]
        found = count_nonfinite(column)
        if found:
            first = lines[int(np.flatnonzero(~np.isfinite(column))[0])]
            raise DataError(f"{path}: column {name!r} contains {found} value(s) (first on line {first})")
    return split_user_data(
        x, y, cfg, where=str(path), x_name="features", y_name=f"column {label!r}", source=source, features=names
    )
