"""Schedules for the intrinsic coefficient c_int over training progress."""

from __future__ import annotations


class CoefSchedule:
    """c_int as a function of progress in [0, 1] (0 = start of training).

    ``constant``: always ``start``. ``linear``: from ``start`` to ``end`` over training.
    """

    KINDS = ("constant", "linear")

    def __init__(self, kind: str = "constant", start: float = 1.0, end: float = 0.0):
        if kind not in self.KINDS:
            raise ValueError(f"intrinsic coefficient schedule={kind!r}; allowed: {self.KINDS}")
        self.kind, self.start, self.end = kind, float(start), float(end)

    def __call__(self, progress: float) -> float:
        if self.kind == "constant":
            return self.start
        p = min(max(progress, 0.0), 1.0)
        return self.start + (self.end - self.start) * p
