"""The push task's named shifts through the monitor's rollout and evaluation code: each env
family has its own suite, looked up by env id; names unknown for an env are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from rndx.envs.mujoco import SHIFTS as PUSH_KWARGS
from rndx.envs.mujoco import push_expert
from rndx.envs.mujoco.push import REACH
from rndx.envs.shifts import get_shift, known_shifts, shifted_kwargs, shifts_for
from rndx.monitors.rollouts import run_rollouts
from tests.monitors import tiny_chunk_policy

PUSH = "rndx/MujocoPush-v0"
GOAL = slice(10, 12)  # the goal (x, y) in a push observation


class Expert:
    """The scripted push expert behind SB3's predict (it reads only the observation)."""

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return push_expert(obs), state


class MonitorableExpert(Expert):
    """The expert as a monitorable policy: embedding = the observation; B chunks of horizon
    1 = the expert's action plus small seeded noise."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def embed(self, obs):
        return np.asarray(obs, dtype=np.float32).reshape(-1, 16)

    def sample_chunks(self, obs, n):
        a = push_expert(np.asarray(obs).reshape(-1, 16))
        return a[:, None, None, :] + 0.05 * self.rng.standard_normal((len(a), n, 1, 2))


def test_each_env_family_has_its_own_suite():
    push = known_shifts(PUSH)
    assert push == list(PUSH_KWARGS)  # the env's own SHIFTS, in its order
    assert {"heavy_block", "high_friction", "goal_offset", "obstacle"} <= set(push)
    assert {n for n, s in shifts_for(PUSH).items() if s.benign} == {"nominal", "goal_nudge"}
    assert "crowd" in known_shifts("rndx/AGVWarehouseDynamic-v0") and "crowd" not in push
    assert "crowd" in known_shifts("rndx/BulletAGVWarehouse-v0")  # the AGV suite
    assert known_shifts("CartPole-v1") == ["nominal"]  # no suite registered
    assert shifted_kwargs("heavy_block", {"reward": "dense"}, 0, PUSH) == {
        "reward": "dense",
        "block_mass": 1.0,
    }
    with pytest.raises(ValueError, match=r"unknown shift 'crowd' for rndx/MujocoPush-v0.*obstacle"):
        get_shift("crowd", PUSH)


def test_push_rollouts_run_under_named_shifts_and_are_labelled_by_the_env():
    nominal = run_rollouts(Expert(), PUSH, 6, seed=7, batch=4)
    assert all(r.success and 1 < r.length < 200 for r in nominal)  # the expert succeeds
    again = run_rollouts(Expert(), PUSH, 6, seed=7, batch=3)  # seeded, batch-independent
    for a, b in zip(nominal, again, strict=True):
        np.testing.assert_array_equal(a.obs, b.obs)

    # goal_offset moves the observed goal by the documented (dx, dy), clipped to the field
    # (redrawn where that would put it nearer the block than min_goal_distance)
    shifted = run_rollouts(Expert(), PUSH, 6, seed=7, shift="goal_offset", max_episode_steps=3)
    off = np.asarray(PUSH_KWARGS["goal_offset"]["goal_offset"])
    moved = 0
    for n, s in zip(nominal, shifted, strict=True):
        want = np.clip(n.obs[0, GOAL] + off, -REACH, REACH)
        moved += bool(np.allclose(s.obs[0, GOAL], want, atol=1e-6))
        assert len(s.obs) == 3  # the horizon holds, and no start is already a success
    assert moved >= 1  # the rest were redrawn (the rule itself: test_robots, 200 seeds)

    # heavy_block: the same expert, same starts, needs longer; obstacle: it gets stuck
    heavy = run_rollouts(Expert(), PUSH, 6, seed=7, shift="heavy_block")
    assert np.mean([r.length for r in heavy]) > np.mean([r.length for r in nominal])
    blocked = run_rollouts(Expert(), PUSH, 6, seed=7, shift="obstacle", max_episode_steps=120)
    assert np.mean([r.success for r in blocked]) <= 0.5


def test_unknown_shift_for_the_env_is_an_error_listing_its_shifts():
    with pytest.raises(ValueError, match=r"'crowd' for rndx/MujocoPush-v0; known: \['nominal'"):
        run_rollouts(Expert(), PUSH, 1, shift="crowd")
    with pytest.raises(ValueError, match=r"'heavy_block' for rndx/AGVWarehouse-v0"):
        run_rollouts(Expert(), "rndx/AGVWarehouse-v0", 1, shift="heavy_block")


def test_monitor_calibrates_and_evaluates_on_push_shifts():
    from rndx.monitors.evaluation import calibrate_from_rollouts, evaluate_shift
    from rndx.monitors.monitor import MonitorConfig

    policy = MonitorableExpert()
    cfg = MonitorConfig(delta=0.2, window=2, n_samples=8, score_every=4, rnd_epochs=5)
    mon, summary = calibrate_from_rollouts(policy, PUSH, 12, 100, 120, None, cfg)
    assert summary["successes"] == 12 and mon.info["env_id"] == PUSH
    res = evaluate_shift(mon, policy, PUSH, "obstacle", 6, 200, 120, None)
    assert res["shift"] == "obstacle" and res["episodes"] == 6 and res["success_rate"] <= 0.5
    assert set(res["methods"]) == {"FIPER (and)", "RND-OE", "ACE", "OR"}


def test_evaluate_cli_checks_shift_names_against_the_runs_env(tmp_path, capsys):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rndx.envs import make_sb3_vec_env
    from rndx.monitor import main
    from rndx.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["agent=chunk_flow", "env=mujoco_push"])
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    venv = make_sb3_vec_env(PUSH, 1, 0)
    policy = tiny_chunk_policy(venv.observation_space, venv.action_space)
    venv.close()
    policy.save(tmp_path / "model.zip")
    assert main(["evaluate", f"run={tmp_path}", "shifts=[heavy_block,crowd]"]) == 2
    err = capsys.readouterr().err
    assert "unknown shift 'crowd' for rndx/MujocoPush-v0" in err and "heavy_block" in err
    # push names pass the check; what stops this run is its missing calibration
    assert main(["evaluate", f"run={tmp_path}", "shifts=[heavy_block]"]) == 2
    assert "monitor.pt" in capsys.readouterr().err


def test_an_env_without_a_success_signal_is_named_not_blamed_on_the_policy():
    class Still:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.zeros((len(obs), 1), np.float32), None

        def embed(self, obs):
            return np.asarray(obs, dtype=np.float32).reshape(-1, 3)

        def sample_chunks(self, obs, n):
            return np.zeros((len(np.asarray(obs).reshape(-1, 3)), n, 1, 1), np.float32)

    with pytest.raises(ValueError, match=r"'Pendulum-v1' reports no success signal"):
        run_rollouts(Still(), "Pendulum-v1", 2, seed=0, max_episode_steps=5)
