"""Intrinsic reward modules (RND, RDD), independent of the RL algorithm."""

from __future__ import annotations

from typing import Any

from rndx.intrinsic.base import InputSelector, IntrinsicModule
from rndx.intrinsic.normalization import IntrinsicRewardNormalizer, RunningMeanStd
from rndx.intrinsic.rdd import RDD
from rndx.intrinsic.rnd import RND
from rndx.intrinsic.schedule import CoefSchedule

MODULES = {"rnd": RND, "rdd": RDD}


def build_intrinsic(kind: str, input_dim: int, **kwargs: Any) -> IntrinsicModule:
    """An intrinsic module by name (``rnd`` | ``rdd``) with its keyword arguments."""
    if kind not in MODULES:
        raise ValueError(f"intrinsic module {kind!r}; allowed: {sorted(MODULES)}")
    return MODULES[kind](input_dim, **kwargs)


__all__ = [
    "RND",
    "RDD",
    "IntrinsicModule",
    "InputSelector",
    "RunningMeanStd",
    "IntrinsicRewardNormalizer",
    "CoefSchedule",
    "build_intrinsic",
    "MODULES",
]
