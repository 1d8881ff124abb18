"""Named distribution shifts (rndx.envs.shifts) and labelled rollouts."""

from __future__ import annotations

import numpy as np
import pytest

from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.envs.shifts import (
    SHIFTS,
    apply_reset_hook,
    get_shift,
    known_shifts,
    make_shifted_env,
    shifted_kwargs,
)
from rndx.monitors.rollouts import run_rollouts

ENV = "rndx/AGVWarehouse-v0"


def test_the_suite_has_failure_and_benign_shifts():
    names = set(known_shifts())
    assert {"unseen_layout", "crowd", "lidar_noise", "actuator_loss", "slippery_floor"} <= names
    assert {s for s in names if SHIFTS[s].benign} == {"nominal", "clutter_far", "goal_shift"}
    with pytest.raises(ValueError, match="known"):
        get_shift("earthquake")


@pytest.mark.parametrize("name", known_shifts())
def test_every_shift_builds_and_steps(name):
    env = make_shifted_env(ENV, name, seed=1)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for _ in range(5):
        obs, _, term, trunc, info = env.step(env.action_space.sample())
        if term or trunc:
            break
    env.close()


def test_options_reach_the_env_config():
    kw = shifted_kwargs("lidar_noise", {"layout": "small"}, seed=0)
    assert kw["lidar_noise"] > 0 and kw["lidar_dropout"] > 0 and kw["layout"] == "small"
    a = shifted_kwargs("unseen_layout", {}, seed=0)
    b = shifted_kwargs("unseen_layout", {}, seed=1)
    assert a["layout"] == "procedural" and a["layout_seed"] != b["layout_seed"]  # seedable


def test_goal_shift_moves_the_goal_a_little_and_clutter_stays_far():
    core = AGVCore(20, AGVConfig(**shifted_kwargs("goal_shift", {}, 0)))
    core.seed(list(range(20)))
    core.reset_envs(np.arange(20))
    before = core.goal.copy()
    apply_reset_hook("goal_shift", core, np.arange(20), core.rngs)
    moved = np.hypot(*(core.goal - before).T)
    assert np.all(moved <= 0.4 + 1e-9) and np.mean(moved > 0) > 0.5

    core = AGVCore(20, AGVConfig(**shifted_kwargs("clutter_far", {}, 0)))
    core.seed(list(range(20)))
    core.reset_envs(np.arange(20))
    apply_reset_hook("clutter_far", core, np.arange(20), core.rngs)
    for i in range(20):
        d = core.goal[i] - core.pos[i]
        for p in core.obs_pos[i]:
            t = np.clip((p - core.pos[i]) @ d / (d @ d), 0, 1)
            assert np.hypot(*(p - core.pos[i] - t * d)) >= 2.5
    assert np.all(core.obs_speed == 0)  # static clutter


class Forward:
    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.tile([1.0, 0.0], (len(obs), 1)), state


class Still:
    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.zeros((len(obs), 2)), state


def test_rollouts_are_labelled_by_the_env():
    crash = run_rollouts(Forward(), ENV, 6, seed=0, max_episode_steps=200)
    assert all(r.collision and not r.success for r in crash)
    assert all(0 < r.length < 200 for r in crash)
    idle = run_rollouts(Still(), ENV, 3, seed=0, max_episode_steps=20, batch=2)
    assert [r.length for r in idle] == [20, 20, 20]  # time-out: a failure, not a collision
    assert not any(r.success or r.collision for r in idle)
    again = run_rollouts(Still(), ENV, 3, seed=0, max_episode_steps=20, batch=2)
    np.testing.assert_array_equal(idle[2].obs, again[2].obs)  # seeded
    with pytest.raises(ValueError, match="unknown env id"):
        run_rollouts(Still(), "NoSuchEnv-v9", 1)
