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


def _run_copy(chunk_run, tmp_path, **changes):
    """A copy of the chunk run with config changes (dotted keys), so tests can write there."""
    from omegaconf import OmegaConf

    run = tmp_path / "run"
    run.mkdir()
    cfg = OmegaConf.load(chunk_run / "config.yaml")
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=False)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (run / "model.zip").write_bytes((chunk_run / "model.zip").read_bytes())
    return run


RUN_CHANGES = {"seed": 7, "env.kwargs": {"layout": "small", "n_pedestrians": 1}}


def test_calibrate_passes_the_runs_settings_and_saves_monitor_pt(
    chunk_run, tmp_path, capsys, monkeypatch
):
    from rndx.monitors import Monitor

    run = _run_copy(chunk_run, tmp_path, **RUN_CHANGES)
    seen = []

    def calibrate(policy, env_id, episodes, seed, max_steps, env_kwargs, config, det=False):
        seen.append(
            {
                "env": env_id,
                "episodes": episodes,
                "seed": seed,
                "max_steps": max_steps,
                "env_kwargs": env_kwargs,
                "config": config,
                "det": det,
            }
        )
        mon = Monitor(config, np.ones(2), np.array([0.125, 0.25]), np.array([4.5]))
        return mon, {"episodes": episodes, "successes": episodes - 1}

    monkeypatch.setattr(evaluation, "calibrate_from_rollouts", calibrate)
    assert main(["calibrate", f"run={run}", "episodes=20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("calibrated on 19 successful of 20 rollouts (delta 0.1, window 2, ")
    assert "thresholds RND-OE 0.25, ACE 4.5" in out and f"wrote {run / 'monitor.pt'}" in out
    got = seen[-1]
    assert (got["env"], got["episodes"], got["seed"], got["max_steps"]) == (
        "rndx/AGVWarehouse-v0",
        20,
        7 + 2000,
        30,
    )
    assert got["env_kwargs"] == RUN_CHANGES["env.kwargs"] and got["det"] is True  # eval's
    # scored once per chunk: every `execute` (2) steps, window 2
    assert (got["config"].score_every, got["config"].window) == (2, 2)
    assert Monitor.load(run / "monitor.pt").config == got["config"]
    # seed= and score_every=1 (window 10 then) are taken as given
    assert main(["calibrate", f"run={run}", "episodes=20", "seed=5", "score_every=1"]) == 0
    assert seen[-1]["seed"] == 5 and seen[-1]["config"].window == 10


def test_evaluate_runs_each_shift_with_the_runs_settings_and_writes_the_table(
    chunk_run, tmp_path, capsys, monkeypatch
):
    import json

    from rndx.monitors import Monitor

    run = _run_copy(chunk_run, tmp_path, **RUN_CHANGES)
    Monitor(MonitorConfig(delta=0.5), np.ones(2), np.ones(1), np.ones(1)).save(run / "monitor.pt")
    calls = []

    def evaluate(monitor, policy, env_id, shift, episodes, seed, max_steps, env_kwargs, det):
        calls.append((shift, episodes, seed, max_steps, env_kwargs, det))
        methods = {
            name: {"tpr": 0.1 * (i + 1), "tnr": 0.9, "accuracy": 0.5, "dt": 0.2, "twa": 0.3}
            for i, name in enumerate(evaluation.METHODS)
        }
        return {"shift": shift, "episodes": episodes, "success_rate": 0.5, "methods": methods}

    monkeypatch.setattr(evaluation, "evaluate_shift", evaluate)
    assert main(["evaluate", f"run={run}", "shifts=[lidar_noise,crowd]", "episodes=3"]) == 0
    assert [c[0] for c in calls] == ["lidar_noise", "crowd"]
    # evaluation seeds (run seed + 3000) are not the calibration ones (+ 2000)
    assert calls[0][1:] == (3, 7 + 3000, 30, RUN_CHANGES["env.kwargs"], True)
    table = capsys.readouterr().out
    assert "| crowd | 0.50 | RND-OE | 0.20 | 0.90 | 0.50 | 0.20 | 0.30 |" in table
    saved = json.loads((run / f"monitor_eval_{7 + 3000}.json").read_text())
    assert [r["shift"] for r in saved] == ["lidar_noise", "crowd"]
    assert main(["evaluate", f"run={run}", "shifts=[crowd]", "seed=11"]) == 0
    assert calls[-1][1:3] == (100, 11) and (run / "monitor_eval_11.json").is_file()
