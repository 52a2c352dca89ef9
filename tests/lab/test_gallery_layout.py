"""The gallery's layout: one entry a file named after it, listed with its file, and imports that point down."""

from __future__ import annotations

import ast
from pathlib import Path

import regopt
from regopt.cli import main
from regopt.lab.gallery.base import HERE
from regopt.lab.gallery.registry import GALLERY, entry_file

PACKAGE = "regopt.lab.gallery"
ROOT = Path(regopt.__file__).resolve().parent.parent  # the folder that holds the regopt package


def module_name(path: Path) -> str:
    """``regopt.lab.gallery.figures.bagging`` for ``.../gallery/figures/bagging.py`` (a package: its name)."""
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> set[str]:
    """Every module ``source`` (code in ``package``) imports, at any depth, relative imports resolved;
    ``from a import b`` counts as importing both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    """The modules the gallery file ``path`` imports."""
    name = module_name(path)
    return imported_modules(path.read_text(), name if path.name == "__init__.py" else name.rpartition(".")[0])


GALLERY_FILES = sorted(HERE.rglob("*.py"))
ENTRY_MODULES = {f"{PACKAGE}.{name}" for name in GALLERY}


def test_the_files_and_their_imports_are_found():
    names = {module_name(path) for path in GALLERY_FILES}
    assert {f"{PACKAGE}.base", f"{PACKAGE}.registry", f"{PACKAGE}.figures"} | ENTRY_MODULES <= names
    assert f"{PACKAGE}.figures.regularize" in imports_of(HERE / "alpha_curve.py")  # imported inside the function
    assert f"{PACKAGE}.base" in imports_of(HERE / "registry.py")  # entries are imported by name, from ENTRIES
    relative = imported_modules("from . import registry\nfrom ..gallery.registry import GALLERY", PACKAGE)
    assert relative == {PACKAGE, f"{PACKAGE}.registry", f"{PACKAGE}.registry.GALLERY"}


def test_every_entry_lives_in_a_module_named_after_it():
    for name, entry in GALLERY.items():
        assert entry.__module__ == f"{PACKAGE}.{name}", f"{name} is defined in {entry.__module__}"
        assert entry.__name__ == name
        path = entry_file(name)
        assert path.as_posix() == f"regopt/lab/gallery/{name}.py"
        assert (ROOT / path).is_file()


def test_list_shows_every_entry_with_its_file(capsys):
    assert main(["list"]) == 0
    printed = capsys.readouterr().out
    for name in GALLERY:
        line = next((line for line in printed.splitlines() if f" {name} " in line and ".py" in line), "")
        assert f"regopt/lab/gallery/{name}.py" in line, f"no line of `regopt list` names {name} with its file"


def test_shipped_configs_are_named_after_their_entries():
    configs = sorted(path.stem for path in HERE.glob("*.toml"))
    assert configs and set(configs) <= set(GALLERY), configs


def test_no_gallery_module_imports_the_registry_or_the_cli():
    for path in GALLERY_FILES:
        if path.name != "registry.py":
            bad = {m for m in imports_of(path) if m == f"{PACKAGE}.registry" or m.startswith("regopt.cli")}
            assert not bad, f"{path.relative_to(HERE)} imports {sorted(bad)}: imports in the gallery point down"


def test_no_gallery_module_but_the_registry_imports_an_entry():
    """Entries import base.py, figures/, helpers and lower layers; base.py, helpers and figures import no entry."""
    for path in GALLERY_FILES:
        if path.name != "registry.py":
            entries = imports_of(path) & (ENTRY_MODULES - {module_name(path)})
            assert not entries, f"{path.relative_to(HERE)} imports the entries {sorted(entries)}"
