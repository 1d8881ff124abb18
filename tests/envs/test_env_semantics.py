"""AGV env semantics pinned down where one-line bugs passed the rest of the suite (a mutation
review of the env core): reward bookkeeping across steps and resets, the kinematics'
limits and gain, non-default sensor settings, resets of per-episode state, the vector
faces' episode ends, and the documented magnitudes of the monitor's shifts."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from rndx.envs.agv import AGVConfig, AGVCore
from rndx.envs.agv.geometry import goal_events, integrate
from rndx.envs.agv.vector import AGVSB3VecEnv, AGVWarehouseVectorEnv
from rndx.envs.shifts import shifted_kwargs

FWD = np.array([1.0, 0.0], np.float32)


def _events(dist: float, collision: bool, pick_drop: bool = False, phase: int = 0):
    pos = np.zeros((1, 2))
    goal = np.array([[dist, 0.0]])
    final = np.array([[5.0, 0.0]])
    ph = np.array([phase], np.int64)
    prev = np.array([dist + 0.1])
    return goal_events(
        pos, goal, final, ph, prev, np.array([collision]), 0.5, pick_drop, 1.0, 0.5, 0.1, 1.0
    )


def test_a_tick_that_collides_inside_the_goal_radius_is_no_success() -> None:
    success, picked, terms = _events(0.3, collision=True)
    assert not success[0] and terms[0, 0] == 0.0 and terms[1, 0] == -0.1
    success, _, terms = _events(0.3, collision=False)
    assert success[0] and terms[0, 0] == 1.0


def test_the_pick_step_pays_no_progress_for_the_goal_jumping() -> None:
    success, picked, terms = _events(0.3, collision=False, pick_drop=True, phase=0)
    assert picked[0] and not success[0]
    assert terms[0, 0] == 0.5 and terms[2, 0] == 0.0  # pick reward, no progress term


def test_dense_progress_is_paid_per_step_and_from_the_reset_distance() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", reward="dense", progress_coef=1.0)
    env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (14.0, 6.0)})
    _, r1, *_ = env.step(FWD)
    _, r2, *_ = env.step(FWD)
    assert r1 == pytest.approx(0.015) and r2 == pytest.approx(0.03)  # accelerating: per step
    env.reset(seed=3)  # sampled start and goal: the first step's progress is one step's
    _, r, *_ = env.step(FWD)
    assert abs(r) <= 1.5 * 0.1 + 1e-9


def test_integration_uses_the_midpoint_heading_the_gain_and_both_acceleration_limits() -> None:
    pos, theta = np.zeros((1, 2)), np.array([0.3])
    v, w = np.array([1.0]), np.array([0.5])
    integrate(pos, theta, v, w, np.array([[1.0, 1.0]]), 1.5, 2.0, 0.5, 0.15, 0.4, 0.1)
    # v: command 1.5 x 0.5 = 0.75, from 1.0 down by at most dv = 0.15 -> 0.85
    assert v[0] == pytest.approx(0.85)
    # w: command 2.0 x 0.5 = 1.0, from 0.5 up by at most dw = 0.4 -> 0.9
    assert w[0] == pytest.approx(0.9)
    mid = 0.3 + 0.5 * 0.9 * 0.1
    np.testing.assert_allclose(pos[0], [0.85 * math.cos(mid) * 0.1, 0.85 * math.sin(mid) * 0.1])
    assert theta[0] == pytest.approx(0.3 + 0.9 * 0.1)


def test_the_observed_turn_rate_is_w_over_w_max() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", w_max=0.5)
    env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (14.0, 6.0)})
    for _ in range(10):
        obs, *_ = env.step(np.array([0.0, 1.0], np.float32))
    assert env.unwrapped.core.w[0] == pytest.approx(0.5)
    assert obs[-1] == pytest.approx(1.0)  # at its limit, whatever v_max is


def test_a_turn_command_beyond_one_is_clipped_before_the_gain() -> None:
    turns = []
    for cmd in (1.0, 2.0):
        env = gym.make("rndx/AGVWarehouse-v0", actuator_gain=0.35)
        env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (14.0, 6.0)})
        for _ in range(10):
            env.step(np.array([0.0, cmd], np.float32))
        turns.append(env.unwrapped.core.w[0])
    assert turns[0] == turns[1] == pytest.approx(0.35 * 1.5)


def test_a_shorter_lidar_range_caps_and_normalises_the_beams() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", lidar_range=2.0)
    obs, _ = env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (14.0, 6.0)})
    beams = obs[:32]
    assert beams.max() == 1.0 and beams.min() >= 0.0  # open floor beyond 2 m reads 1
    assert env.observation_space.contains(obs)


def test_dropout_alone_drops_beams_to_no_return() -> None:
    start = {"start": (2.0, 2.0, 0.0), "goal": (14.0, 6.0)}  # a corner: most beams hit
    clean, _ = gym.make("rndx/AGVWarehouse-v0").reset(seed=0, options=start)
    noisy, _ = gym.make("rndx/AGVWarehouse-v0", lidar_dropout=0.5).reset(seed=0, options=start)
    changed = clean[:32] != noisy[:32]
    assert changed.sum() >= 5
    assert np.all(noisy[:32][changed] == 1.0)  # a dropped beam reads the maximum range


def test_start_headings_cover_the_whole_circle() -> None:
    env = gym.make("rndx/AGVWarehouse-v0")
    headings = []
    for seed in range(200):
        env.reset(seed=seed)
        headings.append(env.unwrapped.core.theta[0])
    h = np.array(headings)
    assert h.min() < -2.5 and h.max() > 2.5 and abs(np.mean(h < 0) - 0.5) < 0.15


def test_a_reset_after_a_pick_clears_the_carrying_flag() -> None:
    env = gym.make("rndx/AGVPickDrop-v0")
    env.reset(seed=0)
    core = env.unwrapped.core
    core.place(0, {"start": (*(core.goal[0] - (0.51, 0.0)), 0.0)})
    _, _, _, _, info = env.step(FWD)
    assert info["picked"] and core.phase[0] == 1
    obs, _ = env.reset(seed=1)
    assert core.phase[0] == 0 and obs[-1] == 0.0


def test_pedestrian_speeds_spread_over_their_range() -> None:
    cfg = AGVConfig(n_pedestrians=6, n_agvs=0)
    core = AGVCore(20, cfg)
    core.seed(list(range(20)))
    core.reset_envs(np.arange(20))
    speeds = np.abs(core.obs_speed).reshape(-1)
    lo, hi = cfg.pedestrian_speed
    assert speeds.min() >= lo - 1e-9 and speeds.max() <= hi + 1e-9
    assert speeds.max() - speeds.min() > 0.5 * (hi - lo)


def test_collision_stop_restores_the_heading_too() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", collision="stop").unwrapped
    env.reset(seed=0, options={"start": (1.35, 6.0, math.pi)})
    env.core.v[:], env.core.w[:] = 1.0, 1.0
    _, _, _, _, info = env.step(np.array([1.0, 1.0], np.float32))
    assert info["collision"]
    assert env.core.theta[0] == pytest.approx(math.pi) or env.core.theta[0] == pytest.approx(
        -math.pi
    )


def test_sb3_face_an_episode_ending_on_its_last_step_is_not_truncated() -> None:
    vec = AGVSB3VecEnv(num_envs=1, max_episode_steps=3)
    vec.seed(0)
    vec.reset()
    vec.core.place(0, {"start": (1.35, 6.0, math.pi)})  # 5 cm from the west wall
    vec.core.v[:] = 0.0
    ends = []
    for _ in range(3):
        vec.step_async(np.array([[1.0, 0.0]], np.float32))
        _, _, dones, infos = vec.step_wait()
        ends.append((bool(dones[0]), infos[0].get("TimeLimit.truncated"), infos[0]["collision"]))
    # 1.5, 3 and 4.5 cm per step from rest: the collision comes on the third, last step
    assert [e[0] for e in ends] == [False, False, True]
    _, truncated, collided = ends[2]
    assert collided and truncated is False  # a terminal state: no bootstrap


def test_gym_vector_face_a_manual_reset_clears_the_pending_autoreset() -> None:
    vec = AGVWarehouseVectorEnv(num_envs=1, max_episode_steps=2)
    vec.reset(seed=0)
    for _ in range(2):
        _, _, term, trunc, _ = vec.step(np.zeros((1, 2), np.float32))
    assert trunc[0] or term[0]
    vec.reset(seed=1)
    _, _, term, trunc, _ = vec.step(np.array([[1.0, 0.0]], np.float32))
    assert not (term[0] or trunc[0])
    assert vec.core.v[0] == pytest.approx(0.15)  # the action was applied, not an autoreset


def test_the_shifts_have_their_documented_magnitudes() -> None:
    """README: actuator_loss gain 0.35; slippery_floor acceleration limits at 15%; lidar_noise
    with noise and dropout."""
    base = AGVConfig()
    loss = shifted_kwargs("actuator_loss", {}, seed=0)
    assert loss["actuator_gain"] == 0.35
    slip = shifted_kwargs("slippery_floor", {}, seed=0)
    assert slip["a_max"] == pytest.approx(0.15 * base.a_max)
    assert slip["alpha_max"] == pytest.approx(0.15 * base.alpha_max)
    noise = shifted_kwargs("lidar_noise", {}, seed=0)
    assert noise["lidar_noise"] >= 0.1 and noise["lidar_dropout"] >= 0.05


def test_moving_obstacles_go_back_and_forth_along_their_paths() -> None:
    """The batched positions equal the per-obstacle formula at every step, out and back."""
    core = AGVCore(3, AGVConfig(n_agvs=2, n_pedestrians=3))
    core.seed([0, 1, 2])
    core.reset_envs(np.arange(3))
    back = False
    for _ in range(400):
        core.step(np.zeros((3, 2)))
        pos = core._obstacle_positions()
        for i in range(3):
            for j in range(core.obs_s.shape[1]):
                np.testing.assert_allclose(pos[i, j], core._obstacle_xy(i, j), atol=1e-9)
        back |= bool((core.obs_s > core.obs_len).any())
    assert back  # the return leg was covered


def test_sampled_starts_and_goals_keep_the_radius_plus_margin_clear() -> None:
    from rndx.envs.agv.core import START_MARGIN
    from rndx.envs.agv.geometry import clearance

    cfg = AGVConfig(layout="large")
    core = AGVCore(64, cfg)
    core.seed(list(range(64)))
    w = core.world
    for _ in range(5):
        core.reset_envs(np.arange(64))
        for pts in (core.pos, core.goal):
            gaps = clearance(np.ascontiguousarray(pts), w.boxes, w.near, w.layout.cell)
            assert gaps.min() >= cfg.radius + START_MARGIN - 1e-9


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"observe_pose": True},
        {"task": "pick_drop", "layout": "pick_drop", "observe_pose": True},
    ],
)
def test_observing_every_vehicle_in_place_equals_observing_them_by_index(kwargs) -> None:
    """observe() writes the noiseless lidar and the poses straight into the core's arrays (the
    hot path); observe(idx) goes through fresh arrays: both give the same bits, the returned
    observations never share memory with the core or with each other, and poses() is the
    pose of the last observation either way."""
    core = AGVCore(4, AGVConfig(**kwargs))
    core.seed([0, 1, 2, 3])
    core.reset_envs(np.arange(4))
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(30):
        core.step(rng.uniform(-1, 1, (4, 2)))
        by_index = core.observe(np.arange(4))
        pose_by_index, ranges_by_index = core.poses().copy(), core.ranges.copy()
        whole = core.observe()
        assert whole.dtype == np.float32 and whole.shape == (4, core.obs_dim)
        assert np.array_equal(whole, by_index) and np.array_equal(core.poses(), pose_by_index)
        assert np.array_equal(core.ranges, ranges_by_index)
        assert not np.shares_memory(whole, core.ranges) and not np.shares_memory(whole, core.pose)
        kept.append((whole, whole.copy()))
    for obs, copy in kept:  # later steps did not write into earlier observations
        assert np.array_equal(obs, copy)
    assert np.array_equal(core.observe(np.array([2]))[0], whole[2])
