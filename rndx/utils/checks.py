"""Checks of user-given settings that name the value and what is allowed."""

from __future__ import annotations

from typing import Any


def whole_number(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int when it is a whole number >= ``minimum`` (an int, or a float such
    as 1e6 from a command line); booleans and anything else raise ValueError naming it."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)
