"""What the chapter 7 gallery entries share: a shipped base config, variants of it, and result tables."""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from regopt.lab.config import RunConfig, to_toml_dict, validate
from regopt.lab.gallery import gallery_config

F = TypeVar("F", bound=Callable[..., Any])


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
    """Decorate a gallery entry to run inside :func:`one_thread` (its name and docstring are kept)."""

    @functools.wraps(entry)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_thread():
            return entry(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def base_config(entry: str, epochs: int | None = None) -> dict[str, Any]:
    """The shipped ``<entry>.toml`` as raw data (every default filled in), with a smaller budget for tests."""
    raw = to_toml_dict(gallery_config(entry))
    if epochs is not None:
        raw["train"]["epochs"] = epochs
    return raw


def variant(base: Mapping[str, Any], entry: str, name: str, changes: Mapping[str, Any] | None = None) -> RunConfig:
    """``base`` renamed ``name`` with each ``"dotted.key": value`` of ``changes`` set (``None`` removes the key).

    Example: ``variant(base, "dropout", "no_dropout", {"model.dropout_hidden": 0.0})``.
    """
    raw = copy.deepcopy(dict(base))
    raw["name"] = name
    for key, value in (changes or {}).items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(value)
    return validate(raw, f"{entry}.toml [{name}]")


def write_table(
    path: Path,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str,
    digits: Mapping[str, int] | None = None,
    append: str = "",
) -> Path:
    """Write ``rows`` as a markdown table under a ``## title`` heading (then ``append``) and print them."""
    from rich.console import Console

    from regopt.lab.atomic import write_text
    from regopt.lab.report import markdown_table, rich_table

    write_text(path, f"## {title}\n\n{markdown_table(headers, rows, digits=digits)}{append}")
    Console().print(rich_table(headers, rows, title=title, digits=digits))
    return path
