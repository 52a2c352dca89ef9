"""Checks shared by the gallery tests: the files an entry writes and the markdown tables in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PNG = b"\x89PNG\r\n\x1a\n"


def check_files(result: Any, out: Path, entry: str, names: list[str] | None = None) -> None:
    """``result`` is entry ``entry``'s, with its files in ``out / entry``: PNG figures and markdown tables. With
    ``names`` (the files, in order), figures must also be real plots (> 20 KB) and texts must hold a table."""
    assert result.entry == entry
    assert result.files, "an entry writes at least a figure and a table"
    if names is not None:
        assert [f.name for f in result.files] == names
    for file in result.files:
        assert file.parent == out / entry and file.is_file(), file
        if file.suffix == ".png":
            assert file.read_bytes()[:8] == PNG
            assert names is None or file.stat().st_size > 20_000
        else:
            text = file.read_text()
            assert text.startswith("## ")
            assert names is None or "| ---" in text


def table_rows(path: Path) -> list[list[str]]:
    """Data rows of the markdown table lines in ``path`` (all lines after the first header and rule)."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def first_table_rows(path: Path) -> list[list[str]]:
    """Data rows of the first markdown table in ``path``, as lists of cell strings."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    rows: list[list[str]] = []
    seen_rule = False
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if all(set(cell) <= set("-:") for cell in cells):
            if seen_rule:
                break  # a second table starts
            seen_rule = True
        elif seen_rule:
            rows.append(cells)
    return rows
