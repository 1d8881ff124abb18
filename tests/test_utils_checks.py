"""The range checks every setting goes through: both ends as documented, booleans refused."""

from __future__ import annotations

import math

import pytest

from rndx.utils.checks import finite_number, whole_number


def test_whole_number_takes_both_ends_of_its_range() -> None:
    assert whole_number("seed", 0, 0, maximum=2**32 - 1) == 0
    assert whole_number("seed", 2**32 - 1, 0, maximum=2**32 - 1) == 2**32 - 1
    with pytest.raises(ValueError, match=r"seed=4294967296 must be an integer in \[0, 42949"):
        whole_number("seed", 2**32, 0, maximum=2**32 - 1)


def test_finite_number_open_and_closed_ends() -> None:
    assert finite_number("delta", 1.0, 0.0, 1.0) == 1.0
    assert finite_number("delta", 0.0, 0.0, 1.0) == 0.0
    for value in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"delta={value} must be in \(0, 1\)"):
            finite_number("delta", value, 0.0, 1.0, open_min=True, open_max=True)
    with pytest.raises(ValueError, match=r"scale=2.0 must be < 2"):
        finite_number("scale", 2.0, maximum=2.0, open_max=True)
    assert finite_number("scale", -math.pi, maximum=2.0, open_max=True) == -math.pi


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_a_number(value: bool) -> None:
    """``lr=true`` is a slip on the command line, not 1.0."""
    with pytest.raises(ValueError, match=f"x={value} must be a finite number >= 0"):
        finite_number("x", value, 0.0)
    with pytest.raises(ValueError, match=f"n={value} must be an integer >= 0"):
        whole_number("n", value, 0)
