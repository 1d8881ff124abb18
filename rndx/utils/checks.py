"""Checks of user-given settings that name the value and what is allowed."""

from __future__ import annotations

import numbers
from typing import Any


def whole_number(name: str, value: Any, minimum: int, why: str = "") -> int:
    """``value`` as an int when it is a whole number >= ``minimum`` (an int, numpy's too, or
    a float such as 1e6 from a command line); booleans, NaN, strings and anything else raise
    ValueError naming it (``why`` is appended to the message)."""
    whole = not isinstance(value, bool) and (
        isinstance(value, numbers.Integral)
        or (isinstance(value, numbers.Real) and float(value).is_integer())
    )
    if not whole or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}{why}")
    return int(value)
