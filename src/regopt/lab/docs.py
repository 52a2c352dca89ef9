"""Regenerate the generated pages of ``docs/``: ``python -m regopt.lab.docs`` from the repository root.

``docs/config.md`` (the config reference, from the schema) and ``docs/python.md`` (where every public name
lives, from the packages' ``__all__``). Tests compare both files with a fresh generation, so a schema or API
change without a regeneration fails ``make test`` with this command in its message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from regopt.lab.api_reference import markdown as python_markdown
from regopt.lab.atomic import write_text
from regopt.lab.schema.reference import markdown as config_markdown

PAGES: dict[str, Callable[[], str]] = {"config.md": config_markdown, "python.md": python_markdown}
"""File name under docs/ -> the function that generates its text."""


def write_pages(folder: str | Path = "docs") -> list[Path]:
    """Write every generated page into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, generate in PAGES.items():
        write_text(folder / name, generate())
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write_pages(sys.argv[1] if len(sys.argv) > 1 else "docs"):
        print(f"wrote {path}")
