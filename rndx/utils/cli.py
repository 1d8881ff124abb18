"""``key=value`` command lines (``python -m rndx.evaluate run=<dir> episodes=50``).

The small commands outside Hydra (evaluate, record, monitor) share this parser so a wrong
key, a value of the wrong type and a missing required key fail the same clear way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def to_bool(value: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0`` (any case) -> bool.

    :raises ValueError: for anything else.
    """
    v = value.strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no"):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def parse_key_values(
    argv: Iterable[str],
    keys: Mapping[str, Callable[[str], Any]],
    required: Iterable[str] = ("run",),
    context: str = "",
) -> dict[str, Any]:
    """Parse ``key=value`` items; ``keys`` maps each allowed key to its type (a callable).

    :param context: named in the error (e.g. the sub-command) when given.
    :raises ValueError: on an unknown key or an item without ``=`` (the valid keys are
        listed), a value its type rejects (key, value and type named), or a missing required key.
    """
    where = f" for {context}" if context else ""
    args: dict[str, Any] = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in keys:
            raise ValueError(f"bad argument {item!r}{where}; valid keys: {', '.join(keys)}")
        kind = keys[key]
        try:
            args[key] = kind(value)
        except ValueError as exc:
            name = getattr(kind, "__name__", "value")
            raise ValueError(f"{key}={value!r} is not a valid {name}: {exc}") from None
    for key in required:
        if key not in args:
            raise ValueError(f"missing {key}=<{'dir' if key == 'run' else 'value'}>")
    return args
