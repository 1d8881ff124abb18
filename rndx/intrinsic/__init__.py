"""Intrinsic reward modules (RND, RDD), independent of the RL algorithm.

Your own module: subclass :class:`IntrinsicModule` (its docstring lists what to define) and
name it ``"package.module:ClassName"`` wherever a module kind goes (``IntrinsicPPO(...,
intrinsic="mybonus:CountBonus")``, ``agent.intrinsic.intrinsic=mybonus:CountBonus`` on the
command line). The class is imported from that path whenever the agent is built or loaded,
so saved agents, ``resume=``, ``rndx.evaluate`` and ``rndx.monitor`` find it in a new
process. A class passed from Python is stored by that path too. ``MODULES`` holds the
short names (``rnd``, ``rdd``); adding one there works only in the process that added it.
"""

from __future__ import annotations

import importlib
from typing import Any

from rndx.intrinsic.base import InputSelector, IntrinsicModule
from rndx.intrinsic.normalization import IntrinsicRewardNormalizer, RunningMeanStd
from rndx.intrinsic.rdd import RDD
from rndx.intrinsic.rnd import RND
from rndx.intrinsic.schedule import CoefSchedule

MODULES = {"rnd": RND, "rdd": RDD}


class IntrinsicImportError(ValueError):
    """A ``"package.module:Class"`` intrinsic module that does not import (a saved agent
    loaded where its module is not on the path)."""


def intrinsic_kind(kind: Any) -> str:
    """``kind`` as it is stored with an agent: a short name as given, an
    :class:`IntrinsicModule` subclass as its ``"module:QualName"`` import path."""
    if isinstance(kind, type):
        if not issubclass(kind, IntrinsicModule):
            raise ValueError(
                f"intrinsic module class {kind.__name__} must subclass IntrinsicModule"
            )
        return f"{kind.__module__}:{kind.__qualname__}"
    if not isinstance(kind, str):
        raise ValueError(
            f"intrinsic module {kind!r}: give a name {sorted(MODULES)}, 'package.module:Class' "
            "or an IntrinsicModule subclass"
        )
    return kind


def intrinsic_class(kind: Any) -> type[IntrinsicModule]:
    """The module class for ``kind``: a name in :data:`MODULES`, ``"package.module:Class"``
    (imported) or an :class:`IntrinsicModule` subclass.

    :raises ValueError: for an unknown name, a path that does not import, or a class that is
        not an IntrinsicModule; the message says which and what is allowed."""
    kind = intrinsic_kind(kind)
    if kind in MODULES:
        return MODULES[kind]
    if ":" not in kind:
        raise ValueError(
            f"intrinsic module {kind!r}; allowed: {sorted(MODULES)} or your own "
            "IntrinsicModule subclass as 'package.module:ClassName'"
        )
    module_name, _, qualname = kind.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise IntrinsicImportError(
            f"intrinsic module {kind!r}: cannot import it ({exc}); put its package on the "
            "Python path (PYTHONPATH, pip install) in every process that builds or loads the agent"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, IntrinsicModule)):
        raise ValueError(f"intrinsic module {kind!r} is {obj!r}, not an IntrinsicModule subclass")
    return obj


def build_intrinsic(kind: Any, input_dim: int, **kwargs: Any) -> IntrinsicModule:
    """An intrinsic module by name (``rnd`` | ``rdd`` | ``"package.module:Class"``) or class,
    with its keyword arguments."""
    return intrinsic_class(kind)(input_dim, **kwargs)


__all__ = [
    "RND",
    "RDD",
    "IntrinsicImportError",
    "IntrinsicModule",
    "InputSelector",
    "RunningMeanStd",
    "IntrinsicRewardNormalizer",
    "CoefSchedule",
    "build_intrinsic",
    "intrinsic_class",
    "intrinsic_kind",
    "MODULES",
]
