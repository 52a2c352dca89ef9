"""Atomic file writes: a temporary file in the same directory, fsync, then rename over the target.

A crash, a full disk or an exception mid-write leaves the previous file intact (POSIX ``rename`` replaces a
file atomically within one filesystem). A process killed mid-write leaves its temporary file behind
(``.NAME.XXXXXXXX.tmp``); :func:`temp_files` finds them and :func:`remove_temp_files` clears them when a run
starts or resumes (one process writes a run directory at a time).

Inside :func:`silenced` (the ranks other than 0 of a ``torchrun`` run) every write here is dropped: one
process writes a run directory, however many train it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

_silent = False


def writes_here() -> bool:
    """Whether this process writes files (not inside :func:`silenced`)."""
    return not _silent


@contextlib.contextmanager
def silenced(silent: bool = True) -> Iterator[None]:
    """Drop every write of this module in the block when ``silent`` (the other ranks of a distributed run)."""
    global _silent
    before, _silent = _silent, silent or _silent
    try:
        yield
    finally:
        _silent = before


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` only if the block completes (a sink that
    keeps nothing inside :func:`silenced`)."""
    if _silent:
        yield io.BytesIO() if "b" in mode else io.StringIO()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an :func:`atomic_write` (``.NAME.XXXXXXXX.tmp``)."""
    return path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp") and path.name.count(".") >= 3


def temp_files(directory: str | Path) -> list[Path]:
    """The temporary files that killed atomic writes left in ``directory`` (none if it does not exist)."""
    directory = Path(directory)
    return sorted(p for p in directory.iterdir() if is_temp_file(p)) if directory.is_dir() else []


def remove_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temporary files of killed atomic writes in ``directory``; return what was removed."""
    removed = temp_files(directory)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(text)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Write ``rows`` as CSV with a header (``columns``, default the first row's keys) to ``path`` atomically;
    nothing is written when there are no rows and no ``columns``."""
    if columns is None and not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns if columns is not None else rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
