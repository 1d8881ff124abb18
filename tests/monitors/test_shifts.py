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
    from rndx.envs.shifts import _route

    far = []
    for i in range(20):
        route = _route(core, i)  # the expert's planned path, start and goal included
        # a free cell >= 3 m away, jittered by up to 0.2 m per axis; on the small layout only
        # 16 cells leave room to pass, so some episodes take the farthest of those instead
        far += [np.min(np.hypot(*(route - p).T)) >= 2.5 for p in core.obs_pos[i]]
        # a vehicle fits between each disc and the nearest wall or shelf (jitter aside)
        room = core.world.clearance(core.obs_pos[i]) - core.cfg.pedestrian_radius
        assert np.all(room >= 2 * core.cfg.radius + 0.15 - 0.3)
    assert np.mean(far) >= 0.8
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


def _expert_wins(env_id: str, shift: str, episodes: int, **kwargs) -> float:
    from rndx.envs.experts import expert_success_rate

    env = make_shifted_env(env_id, shift, seed=0, **kwargs)
    rate = expert_success_rate(env, episodes)
    env.close()
    return rate


def test_benign_shifts_stay_benign_for_pick_and_drop():
    """goal_shift moves the pick station only (it used to put the drop station onto it, so an
    episode 'succeeded' at the pick); clutter_far keeps off both legs of the route and out of
    the aisles (it blocked the pick -> drop leg: the expert timed out)."""
    pd = "rndx/AGVPickDrop-v0"
    env = make_shifted_env(pd, "goal_shift", seed=0)
    ref = make_shifted_env(pd, "nominal", seed=0)
    for seed in range(5):
        env.reset(seed=seed)
        ref.reset(seed=seed)
        a, b = env.unwrapped.core, ref.unwrapped.core
        np.testing.assert_array_equal(a.final_goal, b.final_goal)  # the drop station stays
        assert np.hypot(*(a.goal[0] - b.goal[0])) <= 0.4 + 1e-9
    assert _expert_wins(pd, "goal_shift", 6) == 1.0
    assert _expert_wins(pd, "clutter_far", 8) == 1.0  # 40 of 40 measured (seeds 1000-1039)


def test_goal_shift_moves_a_moving_goals_whole_path():
    """With goal_speed > 0 the path moves by one 0.2-0.4 m offset (a placed goal used to get a
    new lane path, moving the goal up to 1.7 m and dropping a caller's goal_path)."""
    kw = {"goal_speed": 0.5}
    path = ((15.5, 2.5), (15.5, 9.5))
    env = make_shifted_env(ENV, "goal_shift", seed=0, **kw)
    for seed in range(8):
        env.reset(seed=seed, options={"goal_path": path})
        core = env.unwrapped.core
        d0, d1 = core.goal_p0[0] - path[0], core.goal_p1[0] - path[1]
        np.testing.assert_allclose(d0, d1, atol=1e-9)  # one offset for the whole path
        assert np.hypot(*d0) <= 0.4 + 1e-9
        np.testing.assert_allclose(core.goal[0], core.goal_p0[0])


def test_pick_drop_goal_and_drop_options():
    from rndx.envs.agv.core import AGVConfig, AGVCore

    core = AGVCore(1, AGVConfig(task="pick_drop", layout="pick_drop"))
    core.seed([0])
    core.reset_envs(np.arange(1))
    drop = core.final_goal[0].copy()
    core.place(0, {"goal": (18.5, 8.5)})
    np.testing.assert_array_equal(core.final_goal[0], drop)  # the goal is the pick station
    core.place(0, {"drop": (2.5, 2.5)})
    np.testing.assert_array_equal(core.final_goal[0], (2.5, 2.5))
    reach = AGVCore(1, AGVConfig())
    with pytest.raises(ValueError, match="drop=.*task='pick_drop' only"):
        reach.place(0, {"drop": (2.5, 2.5)})


def test_the_table_of_shifts_without_failures_says_n_a_without_a_warning():
    import warnings

    from rndx.monitors.evaluation import METHODS, format_table

    nan = float("nan")
    no_failures = {"tpr": nan, "tnr": 0.75, "accuracy": nan, "dt": nan, "twa": nan}
    results = [{"shift": "goal_shift", "success_rate": 1.0, "methods": {}}]
    results[0]["methods"] = {name: dict(no_failures) for name in METHODS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 'Mean of empty slice' was printed here
        table = format_table(results)
    assert "| **mean** | | OR | n/a | 0.75 | n/a | n/a | n/a |" in table


def test_a_batched_reset_hook_draws_each_vehicle_from_its_own_generator():
    """The batch equals N seeded single envs under a shift's reset hook too."""
    cfg = AGVConfig(**shifted_kwargs("goal_shift", {}, 0))
    batch = AGVCore(4, cfg)
    batch.seed([10, 11, 12, 13])
    batch.reset_envs(np.arange(4))
    apply_reset_hook("goal_shift", batch, np.arange(4), batch.rngs)
    for i, seed in enumerate([10, 11, 12, 13]):
        single = AGVCore(1, cfg)
        single.seed([seed])
        single.reset_envs(np.arange(1))
        apply_reset_hook("goal_shift", single, np.arange(1), single.rngs)
        np.testing.assert_array_equal(batch.goal[i], single.goal[0])
