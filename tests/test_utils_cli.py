"""The key=value parser shared by rndx.evaluate, rndx.record and rndx.monitor."""

from __future__ import annotations

import pytest

from rndx.evaluate import parse_cli as evaluate_cli
from rndx.monitor import parse_cli as monitor_cli
from rndx.record import parse_cli as record_cli
from rndx.utils.cli import exit_on_help, help_text, parse_key_values, to_bool, wants_help

KEYS = {"run": str, "episodes": int, "deterministic": to_bool}


def test_typed_values_and_required_run() -> None:
    args = parse_key_values(["run=r", "episodes=5", "deterministic=False"], KEYS)
    assert args == {"run": "r", "episodes": 5, "deterministic": False}
    with pytest.raises(ValueError, match="missing run=<dir>"):
        parse_key_values(["episodes=5"], KEYS)


def test_any_iterable_of_items_parses() -> None:
    """Not only a list: the help check must not use up a generator's items."""
    items = (item for item in ["run=r", "episodes=5"])
    assert parse_key_values(items, KEYS) == {"run": "r", "episodes": 5}


def test_errors_name_the_value_and_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"bad argument 'epsiodes=5'; valid keys: run, episodes"):
        parse_key_values(["run=r", "epsiodes=5"], KEYS)
    with pytest.raises(ValueError, match=r"bad argument 'run' for calibrate"):
        parse_key_values(["run"], KEYS, context="calibrate")
    with pytest.raises(ValueError, match=r"episodes='five' is not a valid int"):
        parse_key_values(["run=r", "episodes=five"], KEYS)
    with pytest.raises(ValueError, match=r"deterministic='maybe' is not a valid bool"):
        parse_key_values(["run=r", "deterministic=maybe"], KEYS)


def test_the_three_commands_share_it() -> None:
    assert evaluate_cli(["run=r", "episodes=3", "deterministic=yes"])["deterministic"] is True
    assert record_cli(["run=r", "every=2"])["every"] == 2
    cmd, args = monitor_cli(["calibrate", "run=r", "delta=0.05"])
    assert (cmd, args["delta"]) == ("calibrate", 0.05)
    for parse, argv in (
        (evaluate_cli, ["run=r", "episodes=x"]),
        (record_cli, ["run=r", "scale=big"]),
        (monitor_cli, ["evaluate", "run=r", "episodes=x"]),
    ):
        with pytest.raises(ValueError, match="is not a valid"):
            parse(argv)
    # episodes=0 is named by its key (it was the rollout function's 'n_episodes must be >= 1')
    for parse, argv in (
        (evaluate_cli, ["run=r", "episodes=0"]),
        (record_cli, ["run=r", "episodes=-1"]),
        (monitor_cli, ["calibrate", "run=r", "episodes=0"]),
        (monitor_cli, ["evaluate", "run=r", "episodes=0"]),
    ):
        with pytest.raises(ValueError, match=r"^episodes='-?[01]' is not a valid int >= 1: got"):
            parse(argv)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("shifts=[crowd,", "unbalanced brackets"),
        ("shifts=[]", "is empty; leave shifts= out"),
        ("shifts=[crowd,crowd]", "names crowd more than once"),
        ("shifts=[crowd,,lidar_noise]", "has an empty entry"),
        ("seed=-1", r"seed=-1 must be an integer in \[0, 4294967295\]"),
        ("seed=99999999999", r"seed=99999999999 must be an integer in \[0, 4294967295\]"),
    ],
)
def test_monitor_shift_lists_and_seeds_are_checked_before_any_rollout(item, message) -> None:
    with pytest.raises(ValueError, match=message):
        monitor_cli(["evaluate", "run=r", item])
    assert monitor_cli(["evaluate", "run=r", "shifts=crowd, lidar_noise"])[1]["shifts"] == [
        "crowd",
        "lidar_noise",
    ]


# ---------------------------------------------------------------------- --help
_USAGE = "usage: python -m tests.fake run=<dir> [episodes=N]"  # read by exit_on_help below


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_doc_and_keys_and_exits_0(flag: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse_key_values(["run=r", flag], KEYS, usage="usage: cmd run=<dir>", doc="Does things.")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cmd run=<dir>\n\nDoes things.\n")
    assert "  run=<str>  (required)\n  episodes=<int>\n  deterministic=<bool>" in out


def test_help_defaults_to_the_calling_modules_usage_and_docstring(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse_key_values(["--help"], KEYS)  # a missing run= is no error with --help
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(_USAGE) and __doc__.strip() in out
    with pytest.raises(SystemExit):
        exit_on_help(["-h"])
    assert capsys.readouterr().out.startswith(_USAGE)
    exit_on_help(["run=r"])  # no help asked: returns
    assert not wants_help(["run=-h", "help"])


def test_help_text_without_keys_is_usage_and_doc() -> None:
    assert help_text("usage: x", "  Doc.\n") == "usage: x\n\nDoc.\n"


def test_headless_setup_silences_pyopengls_info_line() -> None:
    """Hydra logs INFO; PyOpenGL's import-time "No OpenGL_accelerate module loaded" would be in
    every MuJoCo run's console and train.log."""
    import subprocess
    import sys

    pytest.importorskip("OpenGL")
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "from rndx.utils.headless import use_headless_backends\n"
        "use_headless_backends()\n"
        "import OpenGL.GL\n"
        "logging.getLogger('rndx').info('kept')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "kept" in out and "OpenGL" not in out
