"""Name -> optimizer class, as a config's ``[optimizer] name`` refers to them, and the defaults they declare.

Plain names are regopt's own optimizers (the chapter's algorithms); ``torch.<name>`` are torch.optim's, for
comparison. Wrappers run another optimizer, named by their :data:`WRAPPED` key: ``coordinate`` an ``inner`` one
in block coordinate descent (one block per layer), ``sam`` a ``base`` one stepped from the gradient at SAM's
ascent point; a wrapper's own keys are :data:`WRAPPERS`' and every other key goes to the wrapped optimizer. A
default of an option lives once, in the optimizer's signature; :func:`optimizer_default` reads it there, so the
config schema can record the value a run uses without restating it. This module sits below the schema (the
schema imports it; the builders that check keys and construct optimizers are in :mod:`regopt.lab.registry`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim import Optimizer

from regopt.optim import (
    BFGS,
    LBFGS,
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    ConjugateGradient,
    DeltaBarDelta,
    HessianFree,
    Newton,
    RMSProp,
)

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
    "delta_bar_delta": DeltaBarDelta,
    "lbfgs": LBFGS,
    "bfgs": BFGS,
    "cg": ConjugateGradient,
    "newton": Newton,
    "hessian_free": HessianFree,
    "torch.sgd": torch.optim.SGD,
    "torch.adagrad": torch.optim.Adagrad,
    "torch.rmsprop": torch.optim.RMSprop,
    "torch.adam": torch.optim.Adam,
    "torch.adamw": torch.optim.AdamW,
    "torch.adadelta": torch.optim.Adadelta,
    "torch.nadam": torch.optim.NAdam,
    "torch.lbfgs": torch.optim.LBFGS,
}
WRAPPERS = {"coordinate": ("inner", "order", "seed"), "sam": ("base", "rho", "adaptive")}
"""Optimizers that wrap another: their own keys; every other key goes to the wrapped optimizer."""
WRAPPED = {"coordinate": "inner", "sam": "base"}
"""The key that names a wrapper's wrapped optimizer."""
DEFAULT_INNER = "sgd"
"""The optimizer a wrapper runs when the config names none (CoordinateDescent takes a factory and SAM an
optimizer, so the choice of a default is the lab's)."""

_NOT_CONFIGURABLE = {"self", "params"}
LAB_KEYS = ("no_decay_bias_norm",)
"""Keys the lab reads itself (not passed to the constructor)."""


def optimizer_options(name: str) -> list[str]:
    """The keyword arguments a config may give optimizer ``name``."""
    if name in WRAPPERS:
        return [*WRAPPERS[name], f"...options of the {WRAPPED[name]} optimizer"]
    signature = inspect.signature(OPTIMIZERS[name].__init__)
    return [p for p in signature.parameters if p not in _NOT_CONFIGURABLE] + list(LAB_KEYS)


def inner_name(name: str, options: Mapping[str, Any]) -> str:
    """The optimizer whose constructor takes the options other than a wrapper's own: ``name`` itself, or the
    wrapped optimizer of a wrapper (its ``inner`` or ``base``)."""
    return str(options.get(WRAPPED[name], DEFAULT_INNER)) if name in WRAPPERS else name


def takes_closure(name: str) -> bool:
    """Whether optimizer ``name`` (a plain one) needs a closure in ``step`` (torch's L-BFGS, the second-order
    methods): it cannot be wrapped, and float16's loss scaling cannot drive it."""
    cls = OPTIMIZERS.get(name)
    return cls is not None and (issubclass(cls, torch.optim.LBFGS) or bool(getattr(cls, "needs_closure", False)))


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
