"""Checks of user-given settings that name the value and what is allowed."""

from __future__ import annotations

import math
import numbers
from typing import Any

# the largest rendered frame side the robot envs take (their renderers are CPU-bound)
MAX_FRAME = 4096


def whole_number(
    name: str, value: Any, minimum: int, why: str = "", maximum: int | None = None
) -> int:
    """``value`` as an int when it is a whole number in [``minimum``, ``maximum``] (an int,
    numpy's too, or a float such as 1e6 from a command line); booleans, NaN, strings and
    anything else raise ValueError naming it (``why`` is appended to the message)."""
    whole = not isinstance(value, bool) and (
        isinstance(value, numbers.Integral)
        or (isinstance(value, numbers.Real) and float(value).is_integer())
    )
    if not whole or value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}={value!r} must be an integer {allowed}{why}")
    return int(value)


def finite_number(
    name: str,
    value: Any,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> float:
    """``value`` as a float when it is a finite real number in the range (``open_min`` /
    ``open_max`` exclude that end); otherwise a ValueError naming it and the range.
    Booleans and strings are not numbers here."""
    numeric = not isinstance(value, bool) and isinstance(value, numbers.Real)
    f = float(value) if numeric else math.nan
    low_ok = f > minimum if open_min else f >= minimum
    high_ok = f < maximum if open_max else f <= maximum
    if math.isfinite(f) and low_ok and high_ok:
        return f
    if math.isinf(maximum):
        allowed = f"{'>' if open_min else '>='} {minimum:g}"
    elif math.isinf(minimum):
        allowed = f"{'<' if open_max else '<='} {maximum:g}"
    else:
        allowed = f"in {'(' if open_min else '['}{minimum:g}, {maximum:g}{')' if open_max else ']'}"
    kind = "" if math.isfinite(f) else "a finite number "
    raise ValueError(f"{name}={value!r} must be {kind}{allowed}")
