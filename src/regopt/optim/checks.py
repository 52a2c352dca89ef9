"""Argument checks of regopt's optimizers, in ``torch.optim``'s wording: ``Invalid <name>: <value> (<rule>)``.

``torch.optim.SGD(params, lr=-1)`` raises ``ValueError("Invalid learning rate: -1")``; every regopt optimizer
raises the same shape of message, with the rule the value broke, through :func:`check` (the kinds of value that
recur have their own helper). "An integer" and "a number" exclude ``bool`` (:mod:`regopt._checks`), so that
``max_iter=True`` fails instead of meaning 1.

Example::

    >>> check_int("max_iter", 0, 1)
    Traceback (most recent call last):
    ...
    ValueError: Invalid max_iter: 0 (must be an integer >= 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regopt._checks import is_finite_real, is_int

__all__ = ["check", "check_bool", "check_choice", "check_int", "check_real"]


def check(name: str, value: Any, ok: bool, requirement: str) -> None:
    """Raise ``ValueError("Invalid <name>: <value> (<requirement>)")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"Invalid {name}: {value!r} ({requirement})")


def check_int(name: str, value: Any, minimum: int) -> None:
    """``Invalid <name>: <value> (must be an integer >= minimum)`` unless ``value`` is one."""
    check(name, value, is_int(value) and value >= minimum, f"must be an integer >= {minimum}")


def check_real(name: str, value: Any, *, positive: bool = False, maximum: float | None = None) -> None:
    """``Invalid <name>: <value> (must be a finite number >= 0)`` unless ``value`` is one (``> 0`` if ``positive``;
    in ``[0, maximum]`` with a ``maximum``)."""
    ok = is_finite_real(value) and (value > 0 if positive else value >= 0)
    if maximum is None:
        check(name, value, ok, f"must be a finite number {'> 0' if positive else '>= 0'}")
    else:
        bracket = "(" if positive else "["
        check(name, value, ok and value <= maximum, f"must be a finite number in {bracket}0, {maximum:g}]")


def check_bool(name: str, value: Any) -> None:
    """``Invalid <name>: <value> (must be True or False)`` unless ``value`` is a ``bool``."""
    check(name, value, isinstance(value, bool), "must be True or False")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """``Invalid <name>: <value> (must be 'a' or 'b')`` unless ``value`` is one of ``choices``."""
    words = [repr(choice) for choice in choices]
    rule = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    check(name, value, value in choices, f"must be {rule}")
