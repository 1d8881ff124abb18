"""``--help`` / ``-h`` on every ``key=value`` command prints its usage and exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rndx.evaluate
import rndx.monitor
import rndx.record
import rndx.report


def _help(main, argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``main(argv)``: it returns 0 or exits with status 0; return what it printed."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize(
    ("module", "argv", "keys"),
    [
        (
            rndx.evaluate,
            [],
            ["run=<str>  (required)", "episodes=<int >= 1>", "deterministic=<bool>"],
        ),
        (rndx.record, ["run=r"], ["format=<str>", "shift=<str>", "scale=<float>"]),
        (rndx.report, ["runs/"], ["out=<dir>, default reports"]),
        (rndx.monitor, ["calibrate"], ["delta=<float>", "window=<int>"]),
        (rndx.monitor, ["evaluate", "run=r"], ["shifts=<str>"]),
    ],
)
def test_help_prints_the_usage_and_exits_0(module, argv, keys, flag, capsys) -> None:
    out = _help(module.main, [*argv, flag], capsys)
    assert out.startswith(module._USAGE)
    assert module.__doc__.strip().splitlines()[0] in out
    for key in keys:
        assert key in out, key


def test_monitor_help_without_a_command(capsys) -> None:
    assert _help(rndx.monitor.main, ["--help"], capsys).startswith(rndx.monitor._USAGE)


def test_help_from_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rndx.evaluate", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(rndx.evaluate._USAGE)
