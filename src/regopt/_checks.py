"""Argument checks shared across regopt: one definition of "an integer", "a real number" and "a valid alpha".

Python's ``bool`` is a subclass of ``int``, so ``isinstance(True, int)`` holds; an argument that must be a count
or a coefficient rejects ``True`` and ``False`` here, so that ``patience=True`` fails loudly instead of meaning 1.
Each ``check_*`` raises ``ValueError("<name> must be ..., got <value!r>")``, the wording every technique uses.

Example::

    >>> is_int(3), is_int(True), is_int(3.0)
    (True, False, False)
    >>> is_real(float("nan")), is_finite_real(float("nan")), is_finite_real(2)
    (True, False, True)
    >>> check_alpha(0.1)
    0.1
    >>> check_alpha(0, positive=True)
    Traceback (most recent call last):
    ...
    ValueError: alpha must be a finite number > 0, got 0
"""

from __future__ import annotations

import math


def is_int(value: object) -> bool:
    """True for a Python ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """True for a Python ``int`` or ``float`` that is not a ``bool``; NaN and the infinities count (see
    :func:`is_finite_real`)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_real(value: object) -> bool:
    """True for a Python ``int`` or ``float`` that is not a ``bool``, NaN or infinite."""
    return is_real(value) and math.isfinite(value)  # type: ignore[arg-type]


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an integer (not a bool) ``>= minimum``, else ``ValueError`` naming ``name``."""
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value  # type: ignore[return-value]


def check_real(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite number ``>= 0`` (``> 0`` with ``positive``), else ``ValueError``
    naming ``name``."""
    if not is_finite_real(value) or (value <= 0 if positive else value < 0):  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_alpha(alpha: object, *, positive: bool = False) -> float:
    """A penalty's or scale's coefficient ``alpha`` as a float: finite and ``>= 0`` (``> 0`` with ``positive``)."""
    return check_real("alpha", alpha, positive=positive)
