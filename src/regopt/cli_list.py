"""``regopt list``: what a config accepts, read from the schema and the registries (nothing listed by hand)."""

from __future__ import annotations

import argparse
import typing

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import BaseModel
    from pydantic.fields import FieldInfo


def list_command(args: argparse.Namespace, console: Console) -> int:
    """``regopt list``: config sections, datasets, models, optimizers, schedules, regularizers, diagnostics and
    demo entries (with the file of each), all read from the schema and the registries; ``--config``: the whole
    config reference."""
    if args.config:
        from regopt.lab.schema.reference import markdown

        print(markdown(), end="")  # plain text, as docs/config.md holds it
        return 0
    from regopt.lab.config import DiagnosticsConfig, RegularizeConfig, RunConfig
    from regopt.lab.data import DATASETS
    from regopt.lab.gallery.registry import GALLERY, entry_file
    from regopt.lab.models import MODELS
    from regopt.lab.registry import OPTIMIZERS, SCHEDULES, WRAPPERS, optimizer_options

    sections = {
        "config sections (regopt list --config: every key, its type and default)": _sections(RunConfig),
        "datasets ([data] name)": DATASETS,
        "models ([model] name)": MODELS,
        "optimizers ([optimizer] name)": {n: ", ".join(optimizer_options(n)) for n in [*OPTIMIZERS, *WRAPPERS]},
        "schedules ([schedule] name)": SCHEDULES,
        "regularizers ([regularize] keys)": _fields(RegularizeConfig),
        "diagnostics ([diagnostics] keys)": _fields(DiagnosticsConfig),
    }
    for title, entries in sections.items():
        _print_table(console, title, {name: (text,) for name, text in entries.items()}, ("description",))
    gallery = {name: (entry_file(name).as_posix(), (entry.__doc__ or "").strip()) for name, entry in GALLERY.items()}
    _print_table(
        console, "demo gallery (regopt demo --only NAME; the file that defines each)", gallery, ("file", "description")
    )
    return 0


def _print_table(console: Console, title: str, rows: Mapping[str, tuple[str, ...]], columns: tuple[str, ...]) -> None:
    """One titled table without a header: the name in bold, then ``columns``; a file column is never wrapped, so
    that it can be copied whole."""
    table = Table(title=escape(title), title_justify="left", show_header=False)
    table.add_column("name", style="bold", min_width=max(map(len, rows), default=0))  # names are never cut
    for column in columns:
        table.add_column(column, no_wrap=column == "file")
    for name, cells in rows.items():
        table.add_row(Text(name), *(Text(cell) for cell in cells))
    console.print(table)


def _doc_of(info: FieldInfo) -> str:
    """A key's attribute docstring, else the docstring of the section it holds."""
    inner = [a for a in typing.get_args(info.annotation) if isinstance(a, type) and a is not type(None)]
    if isinstance(info.annotation, type):
        inner.append(info.annotation)
    doc = info.description or next((a.__doc__ for a in inner if a.__module__.startswith("regopt")), "")
    return " ".join((doc or "").split())


def _fields(section: type[BaseModel]) -> dict[str, str]:
    """One line per key of a section."""
    return {name: _doc_of(info) for name, info in section.model_fields.items()}


def _sections(config: type[BaseModel]) -> dict[str, str]:
    """Every top-level key and ``[section]`` of a run config, from the schema."""
    from regopt.lab.schema.reference import sections

    out: dict[str, str] = {}
    every = sections()
    for section in every:
        table = section.header.split()[0]
        if section.header == "top level":
            out.update({k.name: k.meaning for k in section.keys})
        elif "." not in table and table.strip("[]") in config.model_fields:
            variants = [s.header.split("=", 1)[1].replace(" |", ",") for s in every if s.header.startswith(f"{table} ")]
            out.setdefault(table, f"name = one of{','.join(variants)}" if variants else section.doc)
    return out
