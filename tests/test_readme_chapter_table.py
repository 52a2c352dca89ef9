"""The README's table of the chapter, topic by topic, names only what exists: every object in its Python column
resolves in regopt's packages (or torch.nn), and every gallery entry is registered."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
from torch import nn

from regopt.lab.gallery.registry import GALLERY

README = Path(__file__).resolve().parents[1] / "README.md"
PACKAGES = ("regopt", "regopt.regularize", "regopt.optim", "regopt.diagnostics", "regopt.ensemble")


def chapter_rows() -> list[list[str]]:
    lines = README.read_text().splitlines()
    start = lines.index("| topic | book | Python | gallery entry |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def resolves(name: str) -> bool:
    if name.startswith("nn."):
        return hasattr(nn, name[3:])
    module, _, attr = name.rpartition(".")
    if module.startswith("regopt"):
        try:
            return not attr or hasattr(importlib.import_module(module), attr)
        except ImportError:
            return False
    return any(hasattr(importlib.import_module(package), name) for package in PACKAGES)


def test_the_table_covers_both_chapters() -> None:
    books = " ".join(row[1] for row in chapter_rows())
    assert "7.1" in books and "7.14" in books and "8.2" in books and "8.7" in books


@pytest.mark.parametrize("row", chapter_rows(), ids=lambda row: row[0][:40])
def test_every_name_in_a_row_exists(row: list[str]) -> None:
    _, _, python, gallery = row
    names = re.findall(r"`([^`]+)`", python)
    assert names
    for name in names:
        assert resolves(name) or importlib.util.find_spec(name) is not None, name
    for entry in re.findall(r"`([^`]+)`", gallery):
        assert entry in GALLERY, entry
