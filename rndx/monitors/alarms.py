"""Alarm rules: when do the windowed scores, against their thresholds, raise an alarm.

``and`` (FIPER's default): both scores above their thresholds at the same step. ``or``:
either one. ``rnd_oe`` / ``ace``: that score alone. The alarm fires at the FIRST step where
the rule holds and stays raised for the rest of the episode (latched).

False-alarm rate: each single score's conformal threshold keeps its own rate within delta, so
``and`` (a subset of either single alarm) stays within delta as well; ``or`` is only bounded
by 2 delta (union bound).
"""

from __future__ import annotations

import numpy as np

RULES = ("and", "or", "rnd_oe", "ace")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"alarm rule {rule!r}; allowed: {list(RULES)}")
    return rule


def rule_holds(rule: str, rnd_over: np.ndarray, ace_over: np.ndarray) -> np.ndarray:
    """Element-wise: does ``rule`` hold given the two exceedance flags."""
    check_rule(rule)
    if rule == "and":
        return np.logical_and(rnd_over, ace_over)
    if rule == "or":
        return np.logical_or(rnd_over, ace_over)
    return np.asarray(rnd_over if rule == "rnd_oe" else ace_over, dtype=bool)


def first_alarm(holds: np.ndarray) -> int | None:
    """Index of the first True in a 1-D trace, None if there is none."""
    h = np.asarray(holds, dtype=bool).reshape(-1)
    idx = np.flatnonzero(h)
    return int(idx[0]) if len(idx) else None
