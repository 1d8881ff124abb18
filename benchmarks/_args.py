"""Argument checks shared by the benchmark scripts: argparse types for numeric flags, the
command line of a run's non-default settings, the rule for results files, and the process
pool the training benchmarks run their jobs in.

The rule (every script that writes ``benchmarks/results/``): a run writes
``benchmarks/results/NAME.*``. Left to its default, NAME is the committed results' name, and a
run whose settings differ from the script's defaults stops before any work when a file of that
name exists; give the name explicitly (``--tag`` / ``--out``) to write elsewhere, or the
default name to overwrite the committed results on purpose.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS_RULE = (
    "Results files: a run writes benchmarks/results/NAME.*; NAME defaults to the committed "
    "results' name, and a run whose settings differ from the defaults stops before any work "
    "when a file of that name exists. Give {flag} NAME to write elsewhere (the default name "
    "to overwrite the committed results on purpose)."
)
PRINTS_ONLY = "Prints its report to stdout; writes no file under benchmarks/results/."
REPORT_RULE = (
    "Prints its report and writes it to benchmarks/results/NAME.md (--out NAME; default "
    "{default}); a run whose settings differ from the defaults stops before any work when "
    "that file exists. Give --out NAME to write elsewhere (the default name to overwrite the "
    "committed report on purpose)."
)


class _Tee(io.TextIOBase):
    def __init__(self, *streams) -> None:  # noqa: ANN002
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def report_path(
    parser: argparse.ArgumentParser, args: argparse.Namespace, results: Path, default: str
) -> Path:
    """``results/<--out or default>.md`` for a speed benchmark's report, after the results
    rule (:func:`refuse_overwrite`); ``args.out`` is the ``--out`` flag."""
    path = results / f"{args.out or default}.md"
    refuse_overwrite(parser, args, [path], named=args.out is not None, flag="--out")
    return path


@contextlib.contextmanager
def printed_report(path: Path) -> Iterator[None]:
    """What the block prints goes to stdout and, when the block ends without an error, to
    ``path`` as well (written atomically: a failed or interrupted run leaves the old
    report)."""
    from rndx.utils.io import atomic_write_text

    buf = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, buf)):
        yield
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())
    print(f"report: {path}", file=sys.stderr)


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (``1e6`` included)."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            try:  # 1e6, as the rndx commands take it
                number = float(text)
            except ValueError:
                number = math.nan
            if not number.is_integer():
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
            value = int(number)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
        return value

    check.__name__ = f"int>={low}"  # argparse names the type in its error message
    return check


positive_int = at_least(1)
nonnegative_int = at_least(0)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{value} must be finite")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be > 0")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be >= 0")
    return value


def changed(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    skip: Iterable[str] = (),
    always: Iterable[str] = (),
) -> list[str]:
    """Command-line words of every argument in ``args`` that differs from ``parser``'s default
    or is in ``always`` (options first, then positionals), leaving out those in ``skip``
    (argument destinations)."""
    skip, always = {"help", *skip}, set(always)
    options: list[str] = []
    positionals: list[str] = []
    for action in parser._actions:
        if action.dest in skip or action.dest == argparse.SUPPRESS:
            continue
        value, default = getattr(args, action.dest, None), action.default
        unchanged = value == default or (value in ([], ()) and default is None)
        if value is None or (unchanged and action.dest not in always):
            continue
        if not action.option_strings:
            positionals += list(map(str, value)) if isinstance(value, list) else [str(value)]
            continue
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        flag = flag or action.option_strings[0]
        if action.nargs == 0:  # store_true
            options += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            options += [flag, *map(str, value)]
        else:
            options += [flag, str(value)]
    return options + positionals


def command(
    script: str,
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    skip: Iterable[str] = (),
    always: Iterable[str] = (),
) -> str:
    """``python benchmarks/<script>`` with every argument that differs from its default (and
    those in ``always``)."""
    words = changed(parser, args, skip, always)
    return shlex.join(["python", f"benchmarks/{script}", *words])


def refuse_overwrite(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    paths: Sequence[Path],
    *,
    named: bool,
    flag: str,
    skip: Iterable[str] = (),
) -> None:
    """The results rule: unless the results name was given (``named``), a run whose settings
    (but those in ``skip``: the name's own parts, the job count) differ from the defaults stops
    with an argparse error when any of ``paths`` exists."""
    if named:
        return
    diff = changed(parser, args, {flag.lstrip("-").replace("-", "_"), *skip})
    existing = [str(p) for p in paths if Path(p).exists()]
    if diff and existing:
        parser.error(
            f"{existing[0]} exists and this run's settings differ from the defaults "
            f"({shlex.join(diff)}): give {flag} NAME to write benchmarks/results/NAME.* "
            f"instead (the default name to overwrite it on purpose)"
        )


def _die_with_parent() -> None:
    """Pool initializer (Linux): SIGKILL this worker when the benchmark process dies, however
    it dies; a killed parent otherwise leaves its workers blocked on the pool's pipe."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` worker processes that end with the benchmark (see :func:`_die_with_parent`)."""
    return ProcessPoolExecutor(max_workers=jobs, initializer=_die_with_parent)
