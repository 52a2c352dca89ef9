"""Defaults a config section shares with the technique it configures, read from the technique's signature.

A config key that is passed straight to a technique's constructor (``patience`` to
:class:`regopt.regularize.EarlyStopping`, ``window`` to :class:`regopt.diagnostics.PlateauMonitor`) takes its
default from there, so the value is written once, in the technique, and the schema (and the generated config
reference, which prints schema defaults) cannot drift from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def default_of(technique: Callable[..., Any], name: str) -> Any:
    """The default ``technique`` declares for its parameter ``name`` (a class: its constructor's).

    Raises:
        TypeError: ``technique`` has no parameter ``name``, or it has no default (a schema that claims to share
            a default that does not exist is a bug, caught when the schema is imported).
    """
    parameter = inspect.signature(technique).parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{getattr(technique, '__qualname__', technique)} has no default for {name!r}")
    return parameter.default
