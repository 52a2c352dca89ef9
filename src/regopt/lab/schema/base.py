"""Shared pieces of the config schema: the strict base model and common field types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the key path and the problem."""


STRICT_TYPES = ConfigDict(strict=True)
"""Values keep the type TOML gives them: a boolean is ``true``/``false`` (not ``"yes"``, ``1`` or ``"true"``), an
integer is not a string, a float or a boolean, and a float is a number (an integer is one) but not a string."""


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are of their declared type (no coercion from strings
    or between booleans and numbers) and immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, **STRICT_TYPES)


def _tuple_from_array(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


FilePath = Annotated[Path, Field(strict=False)]
"""A path, written as a TOML string."""
Pair = Annotated[tuple[float, float], BeforeValidator(_tuple_from_array)]
"""Two numbers, written as a TOML array."""
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
