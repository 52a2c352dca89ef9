"""Name -> optimizer class, as a config's ``[optimizer] name`` refers to them, and the defaults they declare.

Plain names are regopt's own optimizers (the chapter's algorithms); ``torch.<name>`` are torch.optim's, for
comparison. ``coordinate`` wraps an ``inner`` optimizer in block coordinate descent (one block per layer): its
own keys are :data:`WRAPPERS`' and every other key goes to the inner optimizer. A default of an option lives
once, in the optimizer's signature; :func:`optimizer_default` reads it there, so the config schema can record
the value a run uses without restating it. This module sits below the schema (the schema imports it; the
builders that check keys and construct optimizers are in :mod:`regopt.lab.registry`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim import Optimizer

from regopt.optim import SGD, AdaGrad, Adam, AdamW, DeltaBarDelta, RMSProp

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
    "delta_bar_delta": DeltaBarDelta,
    "torch.sgd": torch.optim.SGD,
    "torch.adagrad": torch.optim.Adagrad,
    "torch.rmsprop": torch.optim.RMSprop,
    "torch.adam": torch.optim.Adam,
    "torch.adamw": torch.optim.AdamW,
    "torch.adadelta": torch.optim.Adadelta,
    "torch.nadam": torch.optim.NAdam,
}
WRAPPERS = {"coordinate": ("inner", "order", "seed")}
"""Optimizers that wrap another: their own keys; every other key goes to the inner optimizer."""
DEFAULT_INNER = "sgd"
"""The optimizer a wrapper runs when the config names no ``inner`` (CoordinateDescent takes a factory, so the
choice of a default is the lab's)."""

_NOT_CONFIGURABLE = {"self", "params"}
LAB_KEYS = ("no_decay_bias_norm",)
"""Keys the lab reads itself (not passed to the constructor)."""


def optimizer_options(name: str) -> list[str]:
    """The keyword arguments a config may give optimizer ``name``."""
    if name in WRAPPERS:
        return [*WRAPPERS[name], "...options of the inner optimizer"]
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    return [p for p in signature.parameters if p not in _NOT_CONFIGURABLE] + list(LAB_KEYS)


def inner_name(name: str, options: Mapping[str, Any]) -> str:
    """The optimizer whose constructor takes the options other than a wrapper's own: ``name`` itself, or the
    ``inner`` optimizer of a wrapper."""
    return str(options.get("inner", DEFAULT_INNER)) if name in WRAPPERS else name


def optimizer_default(name: str, key: str, options: Mapping[str, Any] | None = None) -> Any | None:
    """The default that optimizer ``name``'s constructor declares for ``key`` (for a wrapper, its inner
    optimizer's, chosen by ``options``), or None where the name is unknown or ``key`` has no default."""
    target = inner_name(name, options or {})
    if target not in OPTIMIZERS:
        return None
    parameter = inspect.signature(OPTIMIZERS[target].__init__).parameters.get(key)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default
