"""Checkpoints written atomically and read safely.

A checkpoint is written to a temporary file in the same directory and renamed over the old one, so a crash or a
full disk mid-write leaves the previous checkpoint intact. It is read with ``torch.load(weights_only=True)``
(no arbitrary code runs) and must carry regopt's format marker, so a foreign file is rejected with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from regopt.lab.atomic import atomic_write

FORMAT = "regopt.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or not one of ours."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    with atomic_write(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; :class:`CheckpointError` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a regopt checkpoint (missing format marker {FORMAT!r})")
    return state
