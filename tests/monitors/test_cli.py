"""``python -m rndx.monitor`` argument handling and error paths."""

from __future__ import annotations

import pytest

from rndx.monitor import main, parse_cli


def test_parse_cli():
    cmd, args = parse_cli(["calibrate", "run=r", "episodes=20", "delta=0.05", "rule=or"])
    assert cmd == "calibrate" and args == {"run": "r", "episodes": 20, "delta": 0.05, "rule": "or"}
    cmd, args = parse_cli(["evaluate", "run=r", "shifts=[crowd, lidar_noise]"])
    assert args["shifts"] == ["crowd", "lidar_noise"]
    with pytest.raises(ValueError, match="one of"):
        parse_cli(["train", "run=r"])
    with pytest.raises(ValueError, match="valid keys"):
        parse_cli(["evaluate", "run=r", "delta=0.1"])
    with pytest.raises(ValueError, match="known"):
        parse_cli(["evaluate", "run=r", "shifts=[volcano]"])
    with pytest.raises(ValueError, match="not a valid int"):
        parse_cli(["calibrate", "run=r", "episodes=many"])
    with pytest.raises(ValueError, match="missing run"):
        parse_cli(["calibrate"])


def test_main_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["calibrate", f"run={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "usage" in err
