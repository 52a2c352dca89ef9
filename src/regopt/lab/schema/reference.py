"""The config reference: every section and key of a run config, its type, default and meaning.

Generated from the pydantic schema (:class:`regopt.lab.config.RunConfig` and its sections) and the optimizer
registry, so it cannot drift from what a config accepts: ``regopt list --config`` prints it and
``docs/config.md`` is this module's output (``python -m regopt.lab.docs`` regenerates it; a test compares).
A key's meaning is its attribute docstring in the schema; keys without one take theirs from
:data:`regopt.lab.schema.meanings.MEANINGS`.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from regopt.lab.schema.meanings import MEANINGS

REGENERATE = "python -m regopt.lab.docs"
"""The one command that rewrites every generated page under docs/ (run from the repository root)."""


@dataclass(frozen=True)
class Key:
    """One key of a section: its name, type, default and meaning, as the reference prints them."""

    name: str
    type: str
    default: str
    meaning: str


@dataclass
class Section:
    """A TOML table of the config (``[train]``, ``[data] name = "csv"``, ``[regularize.l1]``) and its keys."""

    header: str
    doc: str
    keys: list[Key] = field(default_factory=list)
    extra: str = ""


def sections() -> list[Section]:
    """Every section a config accepts, in the order of :class:`RunConfig`'s fields, each with all its keys."""
    from regopt.lab.config import RunConfig

    top = Section("top level", "Keys outside any table.")
    out = [top]
    for name, info in RunConfig.model_fields.items():
        variants = _models(info.annotation)
        if not variants:
            top.keys.append(_key(RunConfig, name, info))
            continue
        optional = info.default is None
        for model in variants:
            out.extend(_sections_of(model, name, optional=optional, among=len(variants) > 1, default=info))
    _describe_optimizers(next(s for s in out if s.header == "[optimizer]"))
    _describe_torch_schedules(next(s for s in out if s.header.startswith('[schedule] name = "torch.')))
    return out


def _sections_of(
    model: type[BaseModel], path: str, *, optional: bool, among: bool, default: FieldInfo
) -> list[Section]:
    """The section ``[path]`` of ``model`` (one variant of a union when ``among``), then its nested tables."""
    header = f"[{path}]"
    if among:
        tags = typing.get_args(model.model_fields["name"].annotation)
        header += " name = " + (" | ".join(json.dumps(t) for t in tags) or getattr(model, "name_form", ""))
    notes = [_doc(model)]
    if optional:
        notes.append("Optional: absent means off.")
    elif among and default.default_factory is not None and isinstance(default.default_factory(), model):  # type: ignore[call-arg]
        notes.append("The default when the section is absent.")
    section = Section(header, " ".join(n for n in notes if n))
    nested: list[Section] = []
    fields = sorted(model.model_fields.items(), key=lambda item: item[0] != "name")  # the variant's name first
    for name, info in fields:
        inner = _models(info.annotation)
        if inner:
            for sub in inner:
                sub_doc = " ".join(filter(None, [_clean(info.description), _doc(sub)]))
                part = _sections_of(sub, f"{path}.{name}", optional=info.default is None, among=False, default=info)
                part[0].doc = sub_doc + (" Optional: absent means off." if info.default is None else "")
                nested.extend(part)
        else:
            section.keys.append(_key(model, name, info))
    return [section, *nested]


def _describe_optimizers(section: Section) -> None:
    from regopt.lab.optimizer_table import (
        DEFAULT_INNER,
        OPTIMIZERS,
        WRAPPED,
        WRAPPERS,
        optimizer_default,
        optimizer_options,
    )

    def default_lr(name: str) -> str:
        lr = optimizer_default(name, "lr")
        return f"`{lr:g}`" + (f' (`{WRAPPED[name]} = "{DEFAULT_INNER}"`)' if name in WRAPPERS else "")

    rows = [
        f"| `{name}` | {default_lr(name)} | {', '.join(f'`{option}`' for option in optimizer_options(name))} |"
        for name in [*OPTIMIZERS, *WRAPPERS]
    ]
    section.extra = (
        "Every key besides `name` is passed to the optimizer's constructor and checked against it; a key left out "
        "takes the optimizer's own default (for `coordinate` and `sam`, that of the optimizer they wrap: `inner`, "
        "`base`). An omitted `lr` is that default, recorded in the run directory's config.toml. "
        "`sam` (Foret et al. 2021) steps its `base` optimizer with the gradient at the ascent point theta + rho "
        "g/||g|| of the same batch (two forward and backward passes per step). `sam` and the second-order "
        "methods (`lbfgs`, `bfgs`, `cg`, `newton`, `hessian_free`, `torch.lbfgs`; sec. 8.6) are stepped with a "
        "closure that re-runs the step's forward (and backward) on the same batch (the second-order ones are meant "
        "full-batch: `train.batch_size` at least the training set); none trains under "
        '`train.precision = "fp16"`. `newton` and `hessian_free` differentiate the loss themselves, so they refuse '
        "`train.accumulate` > 1, clipping, torchrun and `ill_conditioning` without `probe_size`. "
        "`no_decay_bias_norm` (default true) keeps biases and normalization parameters out of weight decay.\n\n"
        "| optimizer | default `lr` | keys besides `name` |\n| --- | --- | --- |\n" + "\n".join(rows)
    )


def _describe_torch_schedules(section: Section) -> None:
    from regopt.lab.schedule_table import PER_STEP, REFUSED, SCHEDULERS, required_options, scheduler_options

    def keys(name: str) -> str:
        required = required_options(name)
        return ", ".join(f"`{key}`" + (" (required)" if key in required else "") for key in scheduler_options(name))

    rows = [f"| `torch.{name}` | {keys(name)} |" for name in SCHEDULERS]
    section.extra = (
        "Per-step schedulers (" + ", ".join(f"`torch.{name}`" for name in PER_STEP) + ') need `interval = "step"`. '
        "Not offered: " + "; ".join(f"`torch.{name}` {why}" for name, why in REFUSED.items()) + ".\n\n"
        "| scheduler | keys besides `name`, `interval` and the warmup keys |\n| --- | --- |\n" + "\n".join(rows)
    )


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config sections an annotation holds: one class, an optional one, or a discriminated union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models(arg) if m not in found]
    return found


def _key(model: type[BaseModel], name: str, info: FieldInfo) -> Key:
    return Key(name, _type(info.annotation, info.metadata), _default(info), _meaning(model, name, info))


def _meaning(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    if info.description:
        return _clean(info.description)
    for cls in model.__mro__:
        if f"{cls.__name__}.{name}" in MEANINGS:
            return MEANINGS[f"{cls.__name__}.{name}"]
    return MEANINGS.get(name, "")


def _type(annotation: Any, metadata: typing.Sequence[Any] = ()) -> str:
    """A short text for a field's type and constraints: ``float > 0``, ``"relu" | "tanh"``, ``array of int > 0``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], [*args[1:], *metadata])
    bounds = _bounds(metadata)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        kinds = [_type(a) for a in args if a is not type(None)]
        return " or ".join(kinds)
    if origin in (list, tuple):
        items = [a for a in args if a is not Ellipsis]
        count = f"{len(items)} " if origin is tuple and Ellipsis not in args else ""
        return f"array of {count}{_type(items[0]) if items else 'values'}"
    if origin is dict:
        return "table"
    names = {int: "int", float: "float", bool: "bool", str: "string"}
    base = names.get(annotation, "path" if getattr(annotation, "__name__", "") == "Path" else str(annotation))
    return f"{base} {bounds}".strip()


def _bounds(metadata: typing.Sequence[Any]) -> str:
    """``> 0``, ``>= 2``, ``in (0, 1]``, ``matching `regex```: the constraints pydantic keeps in a field's metadata."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update({k: v for k, v in _constraints(item.metadata).items() if v is not None})
        else:
            found.update({k: v for k, v in _constraints([item]).items() if v is not None})
    low = ("(", found["gt"]) if "gt" in found else ("[", found["ge"]) if "ge" in found else None
    high = (")", found["lt"]) if "lt" in found else ("]", found["le"]) if "le" in found else None
    parts = []
    if low and high:
        parts.append(f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}")
    elif low:
        parts.append(f"{'>' if low[0] == '(' else '>='} {low[1]:g}")
    elif high:
        parts.append(f"{'<' if high[0] == ')' else '<='} {high[1]:g}")
    if found.get("pattern"):
        parts.append(f"matching `{found['pattern']}`")
    return ", ".join(parts)


def _constraints(items: typing.Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        for attr in ("gt", "ge", "lt", "le", "pattern"):
            if getattr(item, attr, None) is not None:
                out[attr] = getattr(item, attr)
    return out


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "a table"
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)


def _doc(model: type[BaseModel]) -> str:
    """The section's own docstring (an inherited one describes the base, not this section), else MEANINGS."""
    own = model.__dict__.get("__doc__")
    return _clean(own) if own else MEANINGS.get(model.__name__, "")


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def markdown() -> str:
    """The whole reference as markdown (``docs/config.md``)."""
    lines = [PREAMBLE.format(regenerate=REGENERATE)]
    for section in sections():
        lines += [f"## {section.header}", ""]
        if section.doc:
            lines += [section.doc, ""]
        if section.keys:
            lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
            lines += [
                f"| `{k.name}` | {_cell(k.type)} | {_cell(k.default, code=True)} | {_cell(k.meaning)} |"
                for k in section.keys
            ]
            lines.append("")
        if section.extra:
            lines += [section.extra, ""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str, *, code: bool = False) -> str:
    text = text.replace("|", "\\|")
    return f"`{text}`" if code and text not in ("required", "unset", "a table") else text


PREAMBLE = """# Config reference

A run config is a TOML file (`regopt run CONFIG.toml`); `--set KEY=VALUE` overrides any key, e.g.
`--set optimizer.lr=0.1`. Every table is strict: an unknown key is an error naming it. Tables whose keys
depend on a `name` (`[data]`, `[model]`, `[schedule]`) list each variant separately; a table marked
optional is off when absent. Types: a constraint follows the type (`float > 0`); `"a" | "b"` lists the
accepted strings; `unset` means the key is absent (TOML has no null).

Generated from the schema (`regopt.lab.config.RunConfig`) by `{regenerate}`; do not edit by hand.
`regopt list --config` prints the same reference. Where each Python class lives: [python.md](python.md).

## Custom models

`[model] name = "custom"` with `target = "package.module:function"` calls
`function(input_shape, output_dim, **kwargs)` and expects a `torch.nn.Module` back: `input_shape` is the
shape of one example (e.g. `(40,)`, `(1, 8, 8)`), `output_dim` the number of classes (or of regression
targets), `kwargs` the `[model.kwargs]` table. The module must be importable by the Python that runs
`regopt`: installed, or in a folder on `PYTHONPATH`. Neither the working directory nor the config's folder is
searched by the `regopt` command, so for `mymodels.py` in the working directory run
`PYTHONPATH=. regopt run config.toml`, with:

```python
import math
import torch

def tiny(input_shape, output_dim, width=32):
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(math.prod(input_shape), width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, output_dim),
    )
```

```toml
[model]
name = "custom"
target = "mymodels:tiny"
kwargs = {{ width = 64 }}
```
"""


if __name__ == "__main__":
    print(markdown(), end="")
