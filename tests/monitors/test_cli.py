"""``python -m rndx.monitor`` argument handling and error paths."""

from __future__ import annotations

import numpy as np
import pytest

import rndx.monitors.evaluation as evaluation
from rndx.monitor import _USAGE, main, parse_cli
from rndx.monitors import MonitorConfig
from rndx.monitors.rollouts import Rollout
from tests.monitors import tiny_chunk_policy


@pytest.fixture(scope="module")
def chunk_run(tmp_path_factory):
    """A run dir of an untrained chunk_flow policy (it never succeeds) on the AGV env."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rndx.envs import make_sb3_vec_env
    from rndx.paths import config_dir

    run = tmp_path_factory.mktemp("chunk_run")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["agent=chunk_flow", "env.max_episode_steps=30"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 1, 0)
    policy = tiny_chunk_policy(venv.observation_space, venv.action_space)
    venv.close()
    policy.save(run / "model.zip")
    return run


def test_parse_cli():
    cmd, args = parse_cli(["calibrate", "run=r", "episodes=20", "delta=0.05", "rule=or"])
    assert cmd == "calibrate" and args == {"run": "r", "episodes": 20, "delta": 0.05, "rule": "or"}
    assert parse_cli(["calibrate", "run=r", "rnd=reuse"])[1]["rnd"] == "reuse"
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


def test_calibrate_a_run_whose_policy_never_succeeds_says_so(chunk_run, capsys):
    assert main(["calibrate", f"run={chunk_run}", "episodes=3", "delta=0.5"]) == 2
    err = capsys.readouterr().err
    assert "only 0 of 3 calibration rollouts succeeded" in err and "successful ones" in err
    assert "none succeeded" in err and "rndx.evaluate" in err
    assert not (chunk_run / "monitor.pt").exists()


def _no_rollouts(*args, **kwargs):
    raise AssertionError("rolled out although the settings cannot succeed")


def test_too_few_episodes_fail_before_any_rollout(chunk_run, capsys, monkeypatch):
    monkeypatch.setattr(evaluation, "run_rollouts", _no_rollouts)
    assert main(["calibrate", f"run={chunk_run}", "episodes=5"]) == 2
    err = capsys.readouterr().err
    assert "episodes=5 can never give the 17 successful calibration rollouts" in err
    assert "delta=0.1" in err and "at least 17" in err
    # rnd=reuse on a policy without an exploration RND, and a bad rnd= value: before rollouts
    assert main(["calibrate", f"run={chunk_run}", "episodes=20", "rnd=reuse"]) == 2
    assert "rnd='reuse' needs an IntrinsicPPO agent" in capsys.readouterr().err
    assert main(["calibrate", f"run={chunk_run}", "episodes=20", "rnd=maybe"]) == 2
    assert "rnd='maybe'; allowed: 'fit', 'reuse'" in capsys.readouterr().err


def test_too_few_successes_suggest_how_many_episodes(monkeypatch):
    def rollouts(policy, env_id, n, *args, **kwargs):  # a quarter succeed
        return [Rollout(np.zeros((5, 3), np.float32), i % 4 == 0, False) for i in range(n)]

    class Scorable:  # what the monitor needs of a policy (never called here)
        def embed(self, obs): ...

        def sample_chunks(self, obs, n): ...

    monkeypatch.setattr(evaluation, "run_rollouts", rollouts)
    with pytest.raises(ValueError) as info:
        evaluation.calibrate_from_rollouts(Scorable(), "env", 20, 0, 5, None, MonitorConfig())
    msg = str(info.value)
    assert msg.startswith("only 5 of 20 calibration rollouts succeeded; the monitor needs 17")
    assert msg.endswith("raise episodes= to about 82 (success rate 0.25 so far)")


def test_an_unmonitorable_policy_fails_before_any_rollout(monkeypatch):
    from stable_baselines3 import PPO

    monkeypatch.setattr(evaluation, "run_rollouts", _no_rollouts)
    discrete = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match=r"needs a Box action space .*got Discrete\(2\)$"):
        evaluation.calibrate_from_rollouts(discrete, "CartPole-v1", 20, 0, 5, None, MonitorConfig())
    with pytest.raises(TypeError, match="cannot monitor a NoneType"):
        evaluation.calibrate_from_rollouts(None, "env", 20, 0, 5, None, MonitorConfig())


def test_usage_states_the_chunk_policy_defaults():
    assert "[window=10]" not in _USAGE and "W = 2 if K > 1, else 10" in _USAGE
    assert "[rnd=fit|reuse]" in _USAGE


def test_evaluate_with_a_corrupt_monitor_file_names_it_briefly(chunk_run, capsys):
    path = chunk_run / "monitor.pt"
    path.write_bytes(b"not a monitor")
    try:
        assert main(["evaluate", f"run={chunk_run}", "shifts=[crowd]", "episodes=1"]) == 2
    finally:
        path.unlink()
    err = capsys.readouterr().err
    assert f"{str(path)!r} is corrupt or not an rndx monitor file (" in err
    assert "weights_only" not in err and "file an issue" not in err


def test_evaluate_with_a_monitor_of_another_policy_says_so_before_rolling_out(
    chunk_run, capsys, monkeypatch
):
    from rndx.monitors import Monitor

    # a monitor calibrated for a 3-d observation, not the AGV chunk policy's
    spec = {"class": "Other", "obs_dim": 3, "embedding_dim": None, "action_dim": None}
    cfg = MonitorConfig(delta=0.5)
    path = Monitor(cfg, np.ones(2), np.ones(1), np.ones(1), policy_spec=spec).save(
        chunk_run / "monitor.pt"
    )
    monkeypatch.setattr(evaluation, "run_rollouts", _no_rollouts)
    try:
        assert main(["evaluate", f"run={chunk_run}", "shifts=[crowd]", "episodes=1"]) == 2
    finally:
        path.unlink()
    err = capsys.readouterr().err
    assert "calibrated for a Other with observation dim 3; this ChunkFlowPolicy has" in err
