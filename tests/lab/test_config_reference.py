"""The generated docs: the config reference covers every key of the schema, the API page every public name, and
the files under docs/ are what the generators write now (regenerate: python -m regopt.lab.docs)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import regopt
from regopt.lab import api_reference
from regopt.lab.config import RunConfig
from regopt.lab.docs import PAGES
from regopt.lab.schema import reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section_classes(model: type[BaseModel]) -> list[type[BaseModel]]:
    """Every section class reachable from ``model``, walked independently of the reference's own walker."""
    found: list[type[BaseModel]] = []

    def visit(annotation: typing.Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in found:
            found.append(annotation)
            for info in annotation.model_fields.values():
                visit(info.annotation)
        for arg in typing.get_args(annotation):
            visit(arg)

    visit(model)
    return found


def holds_sections(annotation: typing.Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(holds_sections(arg) for arg in typing.get_args(annotation))


def test_every_key_of_every_section_is_documented():
    every = reference.sections()
    headers = {s.header.split()[0] for s in every}
    top = {k.name for s in every if s.header == "top level" for k in s.keys}
    for name in RunConfig.model_fields:
        assert f"[{name}]" in headers or name in top, name
    documented = {(s.header, k.name): k for s in every for k in s.keys}
    keys = {name for _, name in documented}
    for cls in section_classes(RunConfig):
        for key, info in cls.model_fields.items():
            assert holds_sections(info.annotation) or key in keys, f"{cls.__name__}.{key}"
    for (header, key), entry in documented.items():
        assert entry.meaning, f"{header} {key}: no meaning (give it an attribute docstring in the schema)"
        assert entry.type and entry.default, f"{header} {key}"


def test_types_and_defaults_are_read_from_the_schema():
    rows = {(s.header, k.name): k for s in reference.sections() for k in s.keys}
    assert rows[("[train]", "epochs")].type == "int > 0" and rows[("[train]", "epochs")].default == "20"
    assert rows[('[data] name = "mnist1d"', "val_fraction")].type == "float in (0, 1)"
    gamma = rows[('[schedule] name = "exponential"', "gamma")]
    assert gamma.type == "float in (0, 1]" and gamma.default == "0.95"
    assert rows[("[averaging]", "decay")].default == "unset"
    assert rows[("[regularize.l2]", "alpha")].default == "required"
    assert rows[('[model] name = "mlp"', "widths")].default == "[100, 100]"


def test_meanings_name_existing_keys():
    classes = {cls.__name__: cls for cls in section_classes(RunConfig)}
    bases = {base.__name__: base for cls in classes.values() for base in cls.__mro__ if issubclass(base, BaseModel)}
    all_keys = {key for cls in classes.values() for key in cls.model_fields}
    for entry in reference.MEANINGS:
        owner, _, key = entry.rpartition(".")
        if owner:
            assert key in bases[owner].model_fields, entry
        else:
            assert entry in all_keys or entry in classes, entry


@pytest.mark.parametrize("page", sorted(PAGES))
def test_docs_are_regenerated(page):
    text = (DOCS / page).read_text() if (DOCS / page).is_file() else ""
    assert text == PAGES[page](), f"docs/{page} is out of date: run `{reference.REGENERATE}` and commit it"


def test_api_page_lists_every_public_name_of_every_package():
    packages = [
        f"regopt.{m.name}"
        for m in pkgutil.iter_modules(regopt.__path__)
        if m.ispkg and m.name != "lab" and hasattr(importlib.import_module(f"regopt.{m.name}"), "__all__")
    ]
    assert set(packages) <= set(api_reference.PACKAGES), set(packages) - set(api_reference.PACKAGES)
    text = api_reference.markdown()
    for package in api_reference.PACKAGES:
        for name in importlib.import_module(package).__all__:
            assert f"| `{package}.{name}` |" in text, f"{package}.{name}"
    assert "| `regopt.diagnostics.IllConditioningMonitor` | class |" in text


def test_the_custom_model_example_builds_a_module(tmp_path):
    code = re.search(r"```python\n(.*?)```", reference.PREAMBLE, re.S)
    assert code is not None
    namespace: dict[str, typing.Any] = {}
    exec(code.group(1), namespace)  # the documented example itself
    import torch

    model = namespace["tiny"]((2,), 3, width=4)
    assert model(torch.zeros(5, 2)).shape == (5, 3)
