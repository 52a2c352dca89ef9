"""The identity of a user's data file: its absolute path and SHA-256, checked against the config's record.

:func:`regopt.lab.config.load_config` records ``data.sha256`` when the config has none, so the run
directory's config.toml names exactly the file that was trained on. Loading checks the file against that
record: a changed file is an error with one line (what was recorded, what was found, how to go on), never
used silently.
"""

from __future__ import annotations

from pathlib import Path

from regopt.lab.config import CsvData, NpzData, file_sha256
from regopt.lab.data.errors import DataError


def existing_file(path: Path) -> Path:
    """``path`` if it is a file, else a :class:`DataError` naming ``data.path``."""
    if not path.exists():
        raise DataError(f"data.path: no such file: {path}")
    if not path.is_file():
        raise DataError(f"data.path: not a file: {path}")
    return path


def check_source(cfg: NpzData | CsvData) -> dict[str, str]:
    """``{"path": absolute path, "sha256": digest}`` of the config's file, after checking that it exists and,
    if the config records a ``sha256``, that the file still has it."""
    path = existing_file(Path(cfg.path)).resolve()
    try:
        found = file_sha256(path)
    except OSError as err:
        raise DataError(f"data.path: cannot read {path}: {err}") from None
    if cfg.sha256 is not None and found != cfg.sha256:
        raise DataError(
            f"data.path: {path} has changed since its sha256 was recorded (recorded {cfg.sha256}, found "
            f"{found}); restore the file, or to use it as it is now remove data.sha256 from the config or "
            f"pass --set data.sha256={found}"
        )
    return {"path": str(path), "sha256": found}
