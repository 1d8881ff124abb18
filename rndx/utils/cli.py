"""``key=value`` command lines (``python -m rndx.evaluate run=<dir> episodes=50``).

The small commands outside Hydra (evaluate, record, monitor) share this parser so a wrong
key, a value of the wrong type and a missing required key fail the same clear way, and
``--help`` / ``-h`` prints the command's usage and exits 0 in all of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

HELP_FLAGS = ("-h", "--help")


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


def count(value: str) -> int:
    """A whole number >= 1 (``episodes=``).

    :raises ValueError: for anything else.
    """
    n = int(value)
    if n < 1:
        raise ValueError(f"got {n}")
    return n


def _type_name(kind: Callable[[str], Any]) -> str:
    names = {to_bool: "bool", count: "int >= 1"}
    return names.get(kind, getattr(kind, "__name__", "value"))


def wants_help(argv: Iterable[str]) -> bool:
    """Whether ``argv`` asks for help (``-h`` or ``--help`` anywhere)."""
    return any(a in HELP_FLAGS for a in argv)


def help_text(
    usage: str = "",
    doc: str | None = None,
    keys: Mapping[str, Callable[[str], Any]] | None = None,
    required: Iterable[str] = (),
) -> str:
    """The usage line(s), the description ``doc`` (a module docstring) and the keys with
    their types (required ones marked), as ``--help`` prints them."""
    parts = [usage.strip()] if usage else []
    if doc:
        parts.append(doc.strip())
    if keys:
        req = set(required)
        rows = [
            f"  {k}=<{_type_name(kind)}>{'  (required)' if k in req else ''}"
            for k, kind in keys.items()
        ]
        parts.append("keys:\n" + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


def exit_on_help(
    argv: Iterable[str],
    usage: str | None = None,
    doc: str | None = None,
    keys: Mapping[str, Callable[[str], Any]] | None = None,
    required: Iterable[str] = (),
    _depth: int = 1,
) -> None:
    """If ``argv`` asks for help, print :func:`help_text` to stdout and exit 0.

    ``usage`` and ``doc`` default to the calling module's ``_USAGE`` and docstring, so a
    command needs no text of its own beyond what it prints on an error.
    """
    argv = list(argv)
    if not wants_help(argv):
        return
    if usage is None or doc is None:
        caller = sys._getframe(_depth).f_globals
        usage = caller.get("_USAGE", "") if usage is None else usage
        doc = caller.get("__doc__") if doc is None else doc
    sys.stdout.write(help_text(usage, doc, keys, required))
    raise SystemExit(0)


def parse_key_values(
    argv: Iterable[str],
    keys: Mapping[str, Callable[[str], Any]],
    required: Iterable[str] = ("run",),
    context: str = "",
    usage: str | None = None,
    doc: str | None = None,
) -> dict[str, Any]:
    """Parse ``key=value`` items; ``keys`` maps each allowed key to its type (a callable).

    ``-h`` / ``--help`` among the items prints the usage (``usage``, else the calling
    module's ``_USAGE``), the description (``doc``, else the calling module's docstring) and
    the keys, and exits 0 (:func:`exit_on_help`).

    :param context: named in the error (e.g. the sub-command) when given.
    :raises ValueError: on an unknown key or an item without ``=`` (the valid keys are
        listed), a value its type rejects (key, value and type named), or a missing required key.
    :raises SystemExit: (code 0) after printing the help.
    """
    argv = list(argv)
    exit_on_help(argv, usage, doc, keys, required, _depth=2)
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
            raise ValueError(f"{key}={value!r} is not a valid {_type_name(kind)}: {exc}") from None
    for key in required:
        if key not in args:
            raise ValueError(f"missing {key}=<{'dir' if key == 'run' else 'value'}>")
    return args
