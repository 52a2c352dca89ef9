"""Shared pieces of the config schema: the strict base model and common field types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the key path and the problem."""


KEY_ERROR = "config_key"
"""The pydantic error type of :func:`key_error`."""


def key_error(key: str, message: str) -> PydanticCustomError:
    """An error about the key ``key`` of the section being validated, raised by a section's validator that judges
    keys pydantic does not know (those of ``extra="allow"``): reported as ``section.key: message``."""
    return PydanticCustomError(KEY_ERROR, "{message}", {"key": key, "message": message})


STRICT_TYPES = ConfigDict(strict=True, allow_inf_nan=False)
"""Values keep the type TOML gives them: a boolean is ``true``/``false`` (not ``"yes"``, ``1`` or ``"true"``), an
integer is not a string, a float or a boolean, and a float is a number (an integer is one) but not a string.
Every float is finite: TOML's ``inf`` and ``nan`` are refused where the config is read, not met in training."""


class Strict(BaseModel):
    """A config section: unknown keys are errors, values are of their declared type (no coercion from strings
    or between booleans and numbers) and immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, **STRICT_TYPES)


SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1
"""The seeds ``torch.manual_seed`` accepts (a negative seed is taken modulo 2**64)."""
MAX_SCALE = 1e6
"""Upper bound of learning rates and data noise: a value beyond it can only be a mistake (on data of unit scale
it overflows float32 arithmetic within a few steps, or drowns the data); 1e300 would overflow at once."""


def _tuple_from_array(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


FilePath = Annotated[Path, Field(strict=False)]
"""A path, written as a TOML string."""
Pair = Annotated[tuple[float, float], BeforeValidator(_tuple_from_array)]
"""Two numbers, written as a TOML array."""


def _seed_in_range(value: int) -> int:
    if not SEED_MIN <= value <= SEED_MAX:
        raise ValueError(f"{value} is not a seed: a seed lies in -2**63 .. 2**64 - 1 (what torch.manual_seed takes)")
    return value


Seed = Annotated[int, AfterValidator(_seed_in_range)]
"""A seed: any integer from -2**63 to 2**64 - 1, as ``torch.manual_seed`` takes."""
Rate = Annotated[float, Field(gt=0.0, le=MAX_SCALE)]
"""A learning rate: positive, at most 1e6."""
MAX_SAMPLES = 10_000_000
"""Most examples a generated dataset or split may have (a few hundred MB of features); more cannot be allocated
on a typical machine and would take hours to generate."""
MAX_WIDTH = 65_536
"""Most units or channels in one layer."""
MAX_HIDDEN_WEIGHTS = 1_000_000_000
"""Most hidden-to-hidden weights of an MLP (4 GB of float32, before gradients and optimizer state)."""
Samples = Annotated[int, Field(gt=0, le=MAX_SAMPLES)]
"""A number of examples: positive, at most 10,000,000."""
Width = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
"""Units or channels of a layer: positive, at most 65,536."""
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
