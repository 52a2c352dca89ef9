"""The shared argument checks of regopt._checks: what counts as an integer or a real number, and their messages."""

from __future__ import annotations

import math

import pytest

from regopt._checks import check_alpha, check_int, check_real, is_finite_real, is_int, is_real

NOT_NUMBERS = ["1", None, [1], 1j]


@pytest.mark.parametrize(("value", "expected"), [(0, True), (-3, True), (10**30, True), (True, False), (False, False)])
def test_is_int_takes_ints_but_not_booleans(value: object, expected: bool) -> None:
    assert is_int(value) is expected


@pytest.mark.parametrize("value", [1.0, 2.5, math.nan, *NOT_NUMBERS])
def test_is_int_rejects_floats_and_non_numbers(value: object) -> None:
    assert not is_int(value)


@pytest.mark.parametrize("value", [0, -2, 0.5, math.nan, math.inf, -math.inf])
def test_is_real_checks_the_type_only(value: object) -> None:
    assert is_real(value)


@pytest.mark.parametrize("value", [True, False, *NOT_NUMBERS])
def test_is_real_rejects_booleans_and_non_numbers(value: object) -> None:
    assert not is_real(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, True), (-1.5, True), (math.nan, False), (math.inf, False), (-math.inf, False), (True, False)],
)
def test_is_finite_real_rejects_nan_and_infinities(value: object, expected: bool) -> None:
    assert is_finite_real(value) is expected


def test_check_int_returns_the_value_at_and_above_the_minimum() -> None:
    assert check_int("steps", 2, 2) == 2
    assert check_int("steps", 0, 0) == 0


@pytest.mark.parametrize("value", [1, True, 2.0, "3", None])
def test_check_int_names_the_argument_and_its_minimum(value: object) -> None:
    with pytest.raises(ValueError) as info:
        check_int("steps", value, 2)
    assert str(info.value) == f"steps must be an integer >= 2, got {value!r}"


def test_check_real_returns_a_float() -> None:
    result = check_real("std", 3)
    assert result == 3.0 and type(result) is float
    assert check_real("std", 0) == 0.0
    assert check_real("lr", 1e-300, positive=True) == 1e-300


@pytest.mark.parametrize(
    ("value", "positive", "message"),
    [
        (-0.1, False, "std must be a finite number >= 0, got -0.1"),
        (0.0, True, "std must be a finite number > 0, got 0.0"),
        (math.nan, False, "std must be a finite number >= 0, got nan"),
        (math.inf, True, "std must be a finite number > 0, got inf"),
        (True, False, "std must be a finite number >= 0, got True"),
        ("1", False, "std must be a finite number >= 0, got '1'"),
    ],
)
def test_check_real_rejects_negative_nan_inf_and_non_numbers(value: object, positive: bool, message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_real("std", value, positive=positive)
    assert str(info.value) == message


def test_check_alpha_bounds() -> None:
    assert check_alpha(0) == 0.0
    assert check_alpha(0.5, positive=True) == 0.5
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got -1e-09$"):
        check_alpha(-1e-9)
    with pytest.raises(ValueError, match=r"^alpha must be a finite number > 0, got 0$"):
        check_alpha(0, positive=True)
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got nan$"):
        check_alpha(math.nan)
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got False$"):
        check_alpha(False)
