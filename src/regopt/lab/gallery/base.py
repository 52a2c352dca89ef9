"""What every gallery entry shares: its result type, its shipped config and variants of it, one table writer, and
the one-thread rule.

An entry is a function ``(out: Path, progress: bool) -> GalleryResult`` in a module named after it
(``gallery/<entry>.py``); :mod:`regopt.lab.gallery.registry` lists them. This module imports no entry: entries
import it, never the other way round.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from regopt.lab.config import RunConfig, load_config, to_toml_dict, validate

if TYPE_CHECKING:
    from regopt.lab.runs import RunResult

HERE = Path(__file__).parent
"""The gallery's folder, where the shipped ``<entry>.toml`` configs live."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class GalleryResult:
    """What an entry produced: the files a reader should open and the headline numbers."""

    entry: str
    files: list[Path]
    numbers: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ configs


def gallery_config(entry: str) -> RunConfig:
    """The shipped config of a training entry (``<entry>.toml`` beside the entries)."""
    return load_config(HERE / f"{entry}.toml")


def base_config(entry: str, epochs: int | None = None) -> dict[str, Any]:
    """The shipped ``<entry>.toml`` as raw data (every default filled in), with a smaller budget for tests."""
    raw = to_toml_dict(gallery_config(entry))
    if epochs is not None:
        raw["train"]["epochs"] = epochs
    return raw


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw["a"]["b"]`` for ``key = "a.b"`` in place, making missing sections; ``None`` removes the key."""
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = copy.deepcopy(value)


def variant(base: Mapping[str, Any], entry: str, name: str, changes: Mapping[str, Any] | None = None) -> RunConfig:
    """``base`` renamed ``name`` with each ``"dotted.key": value`` of ``changes`` set (``None`` removes the key).

    Example: ``variant(base, "dropout", "no_dropout", {"model.dropout_hidden": 0.0})``.
    """
    raw = copy.deepcopy(dict(base))
    raw["name"] = name
    for key, value in (changes or {}).items():
        set_dotted(raw, key, value)
    return validate(raw, f"{entry}.toml [{name}]")


def run_seeds(
    base: Mapping[str, Any],
    entry: str,
    variants: Mapping[str, tuple[str, Mapping[str, Any]]],
    seeds: Sequence[int],
    out: Path,
) -> dict[str, list[RunResult]]:
    """Run every variant at every seed, seed by seed: ``variants`` maps a table row to ``(run name, changes to
    base)``; each run is the run directory ``out/<run name>-seed<seed>``. Returns each row's results in seed
    order."""
    from regopt.lab.runs import run

    results: dict[str, list[RunResult]] = {row: [] for row in variants}
    for seed in seeds:
        for row, (name, changes) in variants.items():
            config = variant(base, entry, f"{name}-seed{seed}", {**changes, "seed": seed})
            results[row].append(run(config, out=out, force=True))
    return results


# ------------------------------------------------------------------------------------------------- tables
RUN_HEADERS = ("run", "final train error", "final val error", "best val error", "final val loss", "test error")
"""Columns of :func:`run_row`, the table of entries that compare a few runs."""


def run_row(label: str, summary: Mapping[str, Any]) -> tuple[Any, ...]:
    """One row of :data:`RUN_HEADERS` from a run's ``summary.json``."""
    keys = ("final_train_error", "final_val_error", "best_val_error", "final_val_loss")
    return (label, *(summary[key] for key in keys), summary.get("test_error"))


def write_table(
    path: Path,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str,
    digits: Mapping[str, int] | None = None,
    append: str = "",
    heading: bool = True,
) -> Path:
    """Write ``rows`` as a markdown table under a ``## title`` heading (then ``append``) and print them titled.

    ``heading=False`` leaves the heading out of the file (the terminal table keeps its title).
    """
    from rich.console import Console

    from regopt.lab.atomic import write_text
    from regopt.lab.report import markdown_table, rich_table

    top = f"## {title}\n\n" if heading else ""
    write_text(path, f"{top}{markdown_table(headers, rows, digits=digits)}{append}")
    Console().print(rich_table(headers, rows, title=title, digits=digits))
    return path


# ---------------------------------------------------------------------------------------------- threads


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, and restore the thread count after it.

    The gallery's models are tiny (batches of 32-50, layers of 256), too small to gain from splitting an op
    across threads, and on a machine shared with other jobs the threads wait on each other: on the 2-core
    machine this was written on, one ``dropout.toml`` run took 4 s on one thread and 30-116 s on two.
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def single_threaded(entry: F) -> F:
    """Decorate a gallery entry to run inside :func:`one_thread` (its name, docstring and module are kept)."""

    @functools.wraps(entry)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_thread():
            return entry(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
