"""``python -m rndx.monitor`` argument handling and error paths."""

from __future__ import annotations

import pytest

from rndx.monitor import main, parse_cli
from tests.monitors import tiny_chunk_policy


def test_parse_cli():
    cmd, args = parse_cli(["calibrate", "run=r", "episodes=20", "delta=0.05", "rule=or"])
    assert cmd == "calibrate" and args == {"run": "r", "episodes": 20, "delta": 0.05, "rule": "or"}
    cmd, args = parse_cli(["evaluate", "run=r", "shifts=[crowd, lidar_noise]"])
    assert args["shifts"] == ["crowd", "lidar_noise"]
    with pytest.raises(ValueError, match="one of"):
        parse_cli(["train", "run=r"])
    with pytest.raises(ValueError, match="valid keys"):
        parse_cli(["evaluate", "run=r", "delta=0.1"])
    # shift names are checked against the run's env when it is loaded (test_push_shifts)
    assert parse_cli(["evaluate", "run=r", "shifts=[volcano]"])[1]["shifts"] == ["volcano"]
    with pytest.raises(ValueError, match="not a valid int"):
        parse_cli(["calibrate", "run=r", "episodes=many"])
    with pytest.raises(ValueError, match="missing run"):
        parse_cli(["calibrate"])


def test_main_reports_errors_in_one_line(tmp_path, capsys):
    assert main(["calibrate", f"run={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "usage" in err


def test_calibrate_a_run_whose_policy_never_succeeds_says_so(tmp_path, capsys):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rndx.envs import make_sb3_vec_env
    from rndx.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["agent=chunk_flow", "env.max_episode_steps=30"])
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 1, 0)
    policy = tiny_chunk_policy(venv.observation_space, venv.action_space)
    venv.close()
    policy.save(tmp_path / "model.zip")
    assert main(["calibrate", f"run={tmp_path}", "episodes=3"]) == 2
    err = capsys.readouterr().err
    assert "only 0 of 3 calibration rollouts succeeded" in err and "successful ones" in err
    assert not (tmp_path / "monitor.pt").exists()
