"""The AGV warehouse: Gymnasium/SB3 contracts, the batched core, lidar geometry, rewards."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rndx  # noqa: F401  (registers the ids)
from rndx.envs import AGV_IDS, make_sb3_vec_env
from rndx.envs.agv import AGVSB3VecEnv, AGVWarehouseVectorEnv
from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.envs.agv.world import load_layout, procedural_layout

RNDX_IDS = sorted(k for k in gym.registry if k.startswith("rndx/"))
DYNAMIC = {"n_agvs": 2, "n_pedestrians": 3}


def test_every_agv_id_is_registered() -> None:
    assert set(AGV_IDS) <= set(RNDX_IDS)


# The robot tasks (rndx/Bullet..., rndx/Mujoco...) have their own tests in test_robots.py.
@pytest.mark.parametrize("env_id", sorted(AGV_IDS))
def test_gymnasium_and_sb3_check_env(env_id: str) -> None:
    check_env(gym.make(env_id).unwrapped)
    sb3_check_env(gym.make(env_id))


@pytest.mark.parametrize("env_id", sorted(AGV_IDS))
def test_registered_with_time_limit_and_vector_entry_point(env_id: str) -> None:
    spec = gym.spec(env_id)
    assert spec.max_episode_steps and spec.max_episode_steps > 0
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(venv, AGVWarehouseVectorEnv)
    assert venv.max_episode_steps == spec.max_episode_steps
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


def _rollout(env: gym.Env, seed: int, steps: int) -> list[tuple]:
    rng = np.random.default_rng(123)
    out = []
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        out.append((obs.copy(), r, term, trunc, info["pose"].copy()))
        if term or trunc:
            obs, _ = env.reset()
    return out


def _drive_forward(env: gym.Env, steps: int) -> tuple[list[float], bool, dict]:
    """Full speed ahead until the episode terminates or ``steps`` pass: (rewards, terminated,
    last info)."""
    rewards, term, info = [], False, {}
    for _ in range(steps):
        _, r, term, _, info = env.step(np.array([1.0, 0.0], np.float32))
        rewards.append(r)
        if term:
            break
    return rewards, term, info


@pytest.mark.parametrize("kwargs", [{}, {**DYNAMIC, "lidar_noise": 0.05, "lidar_dropout": 0.1}])
def test_same_seed_same_trajectory(kwargs: dict) -> None:
    a = _rollout(gym.make("rndx/AGVWarehouse-v0", **kwargs), 7, 300)
    b = _rollout(gym.make("rndx/AGVWarehouse-v0", **kwargs), 7, 300)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:4] == y[1:4]
    c = _rollout(gym.make("rndx/AGVWarehouse-v0", **kwargs), 8, 300)
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {**DYNAMIC, "lidar_noise": 0.05, "lidar_dropout": 0.1},
        {"task": "pick_drop", "layout": "pick_drop"},
    ],
)
def test_batched_core_equals_n_single_envs(kwargs: dict) -> None:
    """Vehicle i of a vector env seeded s follows a single env seeded s + i step by step,
    through episode ends (NEXT_STEP autoreset: the single env resets one step later)."""
    n, seed, steps, limit = 5, 11, 150, 40
    venv = gym.make_vec(
        "rndx/AGVWarehouse-v0",
        num_envs=n,
        vectorization_mode="vector_entry_point",
        max_episode_steps=limit,
        **kwargs,
    )
    singles = [
        gym.make("rndx/AGVWarehouse-v0", max_episode_steps=limit, **kwargs) for _ in range(n)
    ]
    vobs, _ = venv.reset(seed=seed)
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    rng = np.random.default_rng(0)
    pending = np.zeros(n, dtype=bool)
    ends = 0
    for _ in range(steps):
        act = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        vobs, vr, vterm, vtrunc, _ = venv.step(act)
        for i, env in enumerate(singles):
            if pending[i]:
                o, r, te, tr = env.reset()[0], 0.0, False, False
            else:
                o, r, te, tr, _ = env.step(act[i])
            np.testing.assert_array_equal(vobs[i], o)
            assert (vr[i], vterm[i], vtrunc[i]) == (r, te, tr)
        pending = vterm | vtrunc
        ends += pending.sum()
    assert ends > 0  # the comparison did run through episode ends


def test_gymnasium_vector_next_step_autoreset() -> None:
    venv = gym.make_vec(
        "rndx/AGVWarehouse-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        max_episode_steps=3,
    )
    venv.reset(seed=0)
    for _ in range(3):
        obs, r, term, trunc, info = venv.step(np.zeros((2, 2), np.float32))
    assert trunc.all() and not term.any()
    final_pose = info["pose"].copy()
    obs, r, term, trunc, info = venv.step(np.ones((2, 2), np.float32))  # action ignored
    assert not (term | trunc).any() and np.all(r == 0.0)
    assert np.all(info["pose"] != final_pose)  # a new start was sampled
    assert np.all(obs[:, -2:] == 0.0)  # reset: standing still, the action was not applied


def test_sb3_vecenv_same_step_reset_and_bootstrap_info() -> None:
    venv = AGVSB3VecEnv(2, max_episode_steps=3)
    venv.seed(0)
    venv.reset()
    single = gym.make("rndx/AGVWarehouse-v0", max_episode_steps=3)
    single.reset(seed=0)
    for _ in range(3):
        obs, rew, done, infos = venv.step(np.zeros((2, 2), np.float32))
        s_obs, *_ = single.step(np.zeros(2, np.float32))
    assert done.all()
    np.testing.assert_array_equal(infos[0]["terminal_observation"], s_obs)
    assert infos[0]["TimeLimit.truncated"] is True and infos[0]["is_success"] is False
    np.testing.assert_array_equal(obs[0], single.reset()[0])  # reset obs in the same step
    # a termination is not a truncation: no bootstrapping
    venv.reset()
    venv.core.place(0, {"goal": venv.core.pos[0] + (0.1, 0.0)})
    obs, rew, done, infos = venv.step(np.zeros((2, 2), np.float32))
    assert done[0] and infos[0]["is_success"] and infos[0]["TimeLimit.truncated"] is False
    assert rew[0] == pytest.approx(1.0)


def test_make_sb3_vec_env_reports_episodes() -> None:
    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 4, seed=0, max_episode_steps=10)
    venv.reset()
    infos: list = []
    for _ in range(10):
        *_, infos = venv.step(np.zeros((4, 2), np.float32))
    assert all("episode" in i and i["episode"]["l"] == 10 for i in infos)
    with pytest.raises(ValueError, match="rndx/AGVWarehouse-v0"):
        make_sb3_vec_env("rndx/NoSuchEnv-v0", 1, 0)


# --------------------------------------------------------------------------- lidar geometry
def _beam(env: gym.Env, angle: float) -> int:
    offsets = env.unwrapped.core.beam_offsets
    return int(np.argmin(np.abs(np.angle(np.exp(1j * (offsets - angle))))))


def test_lidar_matches_hand_computed_distances() -> None:
    """Small layout: shelf block x in [3, 7], y in [7, 9]; walls x < 1, y > 11, y < 1."""
    env = gym.make("rndx/AGVWarehouse-v0", lidar_range=10.0)
    obs, _ = env.reset(seed=0, options={"start": (1.5, 8.0, 0.0), "goal": (15.5, 2.5)})
    ranges = obs[:32] * 10.0
    expected = {
        0.0: 1.5,  # east: shelf face x = 3
        math.pi: 0.5,  # west: wall face x = 1
        math.pi / 2: 3.0,  # north: wall face y = 11
        -math.pi / 2: 7.0,  # south: wall face y = 1
        math.pi / 4: 3.0 * math.sqrt(2),
    }  # north-east passes over the shelf to y = 11
    for angle, dist in expected.items():
        assert ranges[_beam(env, angle)] == pytest.approx(dist, abs=1e-5), angle


def test_lidar_sees_moving_obstacles_and_is_capped() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", n_agvs=1, agv_radius=0.45, lidar_range=8.0)
    obs, _ = env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "obstacles": [(10.0, 6.0)]})
    ranges = obs[:32] * 8.0
    assert ranges[_beam(env, 0.0)] == pytest.approx(2.0 - 0.45, abs=1e-5)
    assert ranges.max() <= 8.0
    obs, *_ = env.step(np.zeros(2, np.float32))  # frozen obstacle stays where it was put
    assert obs[_beam(env, 0.0)] * 8.0 == pytest.approx(1.55, abs=1e-5)


def _rays_brute_force(pos, theta, offsets, boxes, obs_pos, obs_radius, max_range):
    """Reference lidar: every box and circle, every beam, no candidate lists or skipping;
    the same slab and root formulas in numpy, directions from math.cos / math.sin."""
    a = theta[:, None] + offsets[None, :]
    dx = np.array([[math.cos(v) for v in row] for row in a])[..., None]  # (n, b, 1)
    dy = np.array([[math.sin(v) for v in row] for row in a])[..., None]
    ox, oy = pos[:, 0, None, None], pos[:, 1, None, None]

    def slab(o, d, lo, hi):
        with np.errstate(divide="ignore", invalid="ignore"):
            t0, t1 = (lo - o) / d, (hi - o) / d
        inside = (lo <= o) & (o <= hi)
        parallel = d == 0.0
        entry = np.where(parallel, np.where(inside, -np.inf, np.inf), np.minimum(t0, t1))
        exit_ = np.where(parallel, np.where(inside, np.inf, -np.inf), np.maximum(t0, t1))
        return entry, exit_

    lx, hx = slab(ox, dx, boxes[:, 0], boxes[:, 2])
    ly, hy = slab(oy, dy, boxes[:, 1], boxes[:, 3])
    near = np.maximum(np.maximum(lx, ly), 0.0)
    hit = np.minimum(hx, hy) >= near
    best = np.minimum(np.where(hit, near, np.inf).min(-1), max_range)
    for q in range(len(obs_radius)):
        rx = (obs_pos[:, q, 0] - pos[:, 0])[:, None]
        ry = (obs_pos[:, q, 1] - pos[:, 1])[:, None]
        c2 = rx * rx + ry * ry - obs_radius[q] * obs_radius[q]
        proj = rx * dx[..., 0] + ry * dy[..., 0]
        disc = proj * proj - c2
        with np.errstate(invalid="ignore"):
            t = proj - np.sqrt(disc)
        front = (proj >= 0.0) & (disc >= 0.0)
        best = np.where(front & (t < best), t, best)
        best = np.where(c2 < 0.0, 0.0, best)
    return best


@pytest.mark.parametrize("layout", ["small", "hard", "large", "pick_drop"])
def test_lidar_equals_testing_every_box_on_every_beam(layout: str) -> None:
    """cast_rays' candidate lists and box skipping change no range, not even in the last bit
    (trained agents' results depend on the last bits), on poses anywhere on the floor:
    in aisles, inside shelves and walls, off the floor, among moving obstacles."""
    from rndx.envs.agv.geometry import cast_rays
    from rndx.envs.agv.world import get_world

    world = get_world(layout, 8.0)
    rng = np.random.default_rng(0)
    n = 2000
    size = np.array(world.layout.size)
    pos = rng.uniform(-0.05, 1.05, (n, 2)) * size
    theta = rng.uniform(-np.pi, np.pi, n)
    theta[:100] = rng.choice([0.0, np.pi / 2, -np.pi / 2, np.pi], 100)  # axis-parallel beams
    obs_pos = rng.uniform(0.0, 1.0, (n, 3, 2)) * size
    obs_radius = np.array([0.4, 0.25, 0.25])
    offsets = np.linspace(-np.pi, np.pi, 32, endpoint=False)
    real = world.boxes[:-1]  # without the padding box
    for m in (0, 3):
        got = np.full((n, len(offsets)), np.nan)
        cast_rays(
            got, pos, theta, offsets, world.boxes, world.candidates, world.layout.cell,
            obs_pos[:, :m], obs_radius[:m], 8.0,
        )  # fmt: skip
        want = _rays_brute_force(pos, theta, offsets, real, obs_pos[:, :m], obs_radius[:m], 8.0)
        assert np.array_equal(got, want), np.abs(got - want).max()


# --------------------------------------------------------------------------- rewards, tasks
def test_sparse_goal_reward_and_success() -> None:
    env = gym.make("rndx/AGVWarehouse-v0")
    # from standstill the acceleration limit allows 0.15 m/s: 1.5 cm in the first step
    env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (8.51, 6.0)})
    _, r, term, _, info = env.step(np.array([1.0, 0.0], np.float32))
    assert r == pytest.approx(1.0) and term and info["is_success"]
    assert info["reward_goal"] == pytest.approx(1.0) and info["reward_progress"] == 0.0


def test_collision_penalty_and_termination() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", collision_penalty=0.25)
    env.reset(seed=0, options={"start": (2.6, 8.0, 0.0), "goal": (15.5, 2.5)})
    (*_, r), term, info = _drive_forward(env, 20)
    assert term and info["collision"] and not info["is_success"]
    assert r == pytest.approx(-0.25) and info["reward_collision"] == pytest.approx(-0.25)


def test_dense_reward_rewards_progress() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", reward="dense", progress_coef=1.0)
    env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (14.0, 6.0)})
    _, r_fwd, *_ = env.step(np.array([1.0, 0.0], np.float32))
    assert r_fwd == pytest.approx(0.015)  # 1.5 cm closer, progress_coef 1 per metre
    env.reset(seed=0, options={"start": (8.0, 6.0, math.pi), "goal": (14.0, 6.0)})
    _, r_back, *_ = env.step(np.array([1.0, 0.0], np.float32))
    assert r_back < 0 < r_fwd


def test_pick_then_drop() -> None:
    env = gym.make("rndx/AGVPickDrop-v0")
    env.reset(seed=0)
    core = env.unwrapped.core
    drop = core.final_goal[0].copy()
    core.place(0, {"start": (*(core.goal[0] - (0.51, 0.0)), 0.0)})  # 1.5 cm per first step
    _, r, term, _, info = env.step(np.array([1.0, 0.0], np.float32))
    assert info["picked"] and not term and r == pytest.approx(0.5)
    np.testing.assert_array_equal(core.goal[0], drop)
    assert env.unwrapped.core.observe()[0][-1] == 1.0  # carrying flag
    core.v[0] = 0.0
    core.place(0, {"start": (*(drop + (0.51, 0.0)), math.pi)})  # drop is by the west wall
    _, r, term, _, info = env.step(np.array([1.0, 0.0], np.float32))
    assert term and info["is_success"] and r == pytest.approx(1.0)


def test_moving_obstacles_move_and_collide() -> None:
    env = gym.make("rndx/AGVWarehouseDynamic-v0")
    env.reset(seed=3)
    core = env.unwrapped.core
    before = core.obs_pos[0].copy()
    env.step(np.zeros(2, np.float32))
    assert np.all(np.linalg.norm(core.obs_pos[0] - before, axis=1) > 0.0)
    env.reset(
        seed=3, options={"start": (8.0, 6.0, 0.0), "obstacles": [(8.5, 6.0)] + [(1.5, 1.5)] * 4}
    )
    _, r, term, _, info = env.step(np.zeros(2, np.float32))
    assert term and info["collision"]


def test_no_pedestrian_starts_next_to_the_vehicle() -> None:
    """A crowd's pedestrians start well clear of the vehicle, even on a short stretch of
    aisle next to the start (before the fix: 50 of 1920 starts within 1 m, the closest at
    0.17 m, a collision at step 1-4)."""
    core = AGVCore(64, AGVConfig(layout="small", n_pedestrians=8, pedestrian_speed=(0.8, 1.4)))
    core.seed(list(range(64)))
    closest = []
    for _ in range(30):
        core.reset_envs(np.arange(64))
        closest.append(np.linalg.norm(core.obs_pos - core.pos[:, None, :], axis=2).min(axis=1))
    clearance = core.cfg.radius + core.cfg.pedestrian_radius
    assert np.concatenate(closest).min() > clearance + 0.2  # ~0.8 m measured over seeds


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "action", [np.zeros(3), np.zeros((2, 2)), np.zeros((1, 2)), [np.nan, 0.0], [0.0, np.inf]]
)
def test_bad_actions_raise(action) -> None:
    env = gym.make("rndx/AGVWarehouse-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.asarray(action, dtype=np.float64))


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(3), r"shape \(3,\); expected \(2,\)"),
        ("fast", r"'fast' is not numeric; expected floats of shape \(2,\)"),
        ([None, 0.0], "NaN or inf"),  # numpy reads None as NaN
        ([np.nan, 0.0], r"NaN or inf: \[\[nan, 0.0\]\]; allowed: finite in \[-1, 1\]"),
    ],
)
def test_bad_action_messages_name_the_value_and_what_is_allowed(action, message) -> None:
    env = gym.make("rndx/AGVWarehouse-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_out_of_range_actions_are_clipped() -> None:
    a, b = (gym.make("rndx/AGVWarehouse-v0").unwrapped for _ in range(2))
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(5):
        oa = a.step(np.array([5.0, -7.0]))[0]
        ob = b.step(np.array([1.0, -1.0]))[0]
    np.testing.assert_array_equal(oa, ob)


def test_unknown_layout_and_option_are_named() -> None:
    with pytest.raises(ValueError, match="known layouts.*small"):
        gym.make("rndx/AGVWarehouse-v0", layout="smal")
    with pytest.raises(TypeError, match="lidar_rnage"):
        gym.make("rndx/AGVWarehouse-v0", lidar_rnage=3.0)
    with pytest.raises(ValueError, match="task"):
        gym.make("rndx/AGVWarehouse-v0", task="fly")


# --------------------------------------------------------------------------- layouts, render
def test_named_layouts_parse_with_stations() -> None:
    for name in ("small", "large", "hard", "pick_drop"):
        lay = load_layout(name)
        assert (lay.grid == "S").any() and lay.solid.any()
    hard = load_layout("hard")
    start, goal = hard.cells("S").mean(0), hard.cells("G").mean(0)
    assert np.hypot(*(goal - start)) < 10.0  # close as the crow flies, far around the shelves


def test_procedural_layouts_come_from_the_seed() -> None:
    a, b, c = procedural_layout(1), procedural_layout(1), procedural_layout(2)
    np.testing.assert_array_equal(a.grid, b.grid)
    assert a.grid.shape != c.grid.shape or not np.array_equal(a.grid, c.grid)
    env = gym.make("rndx/AGVWarehouse-v0", layout="procedural", layout_seed=5)
    check_env(env.unwrapped)


def test_rgb_render_is_a_drawn_top_down_frame() -> None:
    env = gym.make("rndx/AGVWarehouseDynamic-v0", render_mode="rgb_array")
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.array([0.5, 0.1], np.float32))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 8  # shelves, robot, goal, rays...


def test_obstacle_agvs_keep_to_one_side_of_the_aisle() -> None:
    """AGV routes run 0.5 m off an aisle's centre line, leaving room to pass them."""
    env = gym.make("rndx/AGVWarehouseDynamic-v0")
    env.reset(seed=4)
    core = env.unwrapped.core
    lanes = core.world.lanes
    for j in range(core.cfg.n_agvs):
        p0, p1 = core.obs_p0[0, j], core.obs_p1[0, j]
        offsets = []
        for lane in lanes:
            a, b = lane[:2], lane[2:]
            u = (b - a) / np.linalg.norm(b - a)
            if abs(abs(np.dot(u, (p1 - p0) / np.linalg.norm(p1 - p0))) - 1) < 1e-9:
                offsets.append(abs(u[0] * (p0 - a)[1] - u[1] * (p0 - a)[0]))  # 2D cross
        assert min(offsets) == pytest.approx(0.5)


def test_unreachable_min_goal_distance_is_an_error() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", min_goal_distance=100.0)
    with pytest.raises(ValueError, match="min_goal_distance=100.0"):
        env.reset(seed=0)


@pytest.mark.parametrize("kwargs", [{}, {"reward": "dense"}, DYNAMIC])
def test_action_repeat_equals_holding_the_command(kwargs: dict) -> None:
    """One step with action_repeat k = k steps with the same command, rewards summed."""
    rng = np.random.default_rng(0)
    single = gym.make("rndx/AGVWarehouse-v0", max_episode_steps=None, **kwargs).unwrapped
    held = gym.make("rndx/AGVWarehouse-v0", max_episode_steps=None, action_repeat=3, **kwargs)
    held = held.unwrapped
    start = {"start": (8.0, 6.0, 0.3), "goal": (14.0, 6.0)}
    single.reset(seed=5, options=start)
    held.reset(seed=5, options=start)
    for _ in range(15):
        a = rng.uniform(-1, 1, 2).astype(np.float32)
        total = 0.0
        for _ in range(3):
            obs, r, term, _, info = single.step(a)
            total += r
            if term:
                break
        obs_h, r_h, term_h, _, info_h = held.step(a)
        np.testing.assert_allclose(obs_h, obs, atol=1e-6)
        np.testing.assert_allclose(info_h["pose"], info["pose"], atol=1e-6)
        assert r_h == pytest.approx(total) and term_h == term
        if term:
            break


def test_action_repeat_stops_at_the_tick_that_ends_the_step() -> None:
    """A collision in the first of 4 ticks: the vehicle is frozen there, the penalty counted
    once, and a vehicle still driving in the same batch moves all 4 ticks."""
    core = AGVCore(2, AGVConfig(action_repeat=4))
    core.reset_envs(np.arange(2))
    core.place(0, {"start": (1.31, 6.0, math.pi)})  # facing the west wall, 1 cm from it
    core.place(1, {"start": (8.0, 6.0, 0.0)})
    core.v[:] = 1.0
    reward, events = core.step(np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert events["collision"].tolist() == [True, False]
    assert reward[0] == pytest.approx(-0.1) and reward[1] == 0.0
    assert core.pos[0, 0] == pytest.approx(1.31 - 0.1 * core.v[0], abs=1e-9)  # one tick
    assert core.pos[1, 0] > 8.0 + 3 * 0.1 and core.steps.tolist() == [1, 1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_action_repeat_is_named(bad) -> None:
    with pytest.raises(ValueError, match="action_repeat"):
        AGVConfig(action_repeat=bad)


def test_observe_pose_appends_the_normalised_pose() -> None:
    """observe_pose: the observation ends with x / width, y / height, cos, sin of the heading,
    the rest unchanged; check_env holds on the wider space and the batched core agrees."""
    plain = gym.make("rndx/AGVWarehouse-v0", layout="hard")
    posed = gym.make("rndx/AGVWarehouse-v0", layout="hard", observe_pose=True)
    check_env(posed.unwrapped)
    assert posed.observation_space.shape[0] == plain.observation_space.shape[0] + 4
    start = {"start": (11.0, 6.0, 2.0), "goal": (1.5, 1.5)}  # mid-aisle
    o_plain, _ = plain.reset(seed=3, options=start)
    o_posed, info = posed.reset(seed=3, options=start)
    np.testing.assert_allclose(o_posed[:-4], o_plain)
    np.testing.assert_allclose(
        o_posed[-4:], [11.0 / 22, 6.0 / 12, math.cos(2.0), math.sin(2.0)], atol=1e-6
    )
    a = np.array([0.5, -0.3], np.float32)
    for _ in range(5):
        o_plain, *_ = plain.step(a)
        o_posed, _, _, _, info = posed.step(a)
    np.testing.assert_allclose(o_posed[:-4], o_plain)
    x, y, c, s = info["pose"]
    np.testing.assert_allclose(o_posed[-4:], [x / 22, y / 12, c, s], atol=1e-6)
    vec = AGVWarehouseVectorEnv(num_envs=3, layout="hard", observe_pose=True)
    obs, infos = vec.reset(seed=0)
    assert obs.shape == (3, o_posed.shape[0]) and vec.single_observation_space.contains(obs[0])
    np.testing.assert_allclose(obs[:, -4:-2] * [22, 12], infos["pose"][:, :2], atol=1e-5)


def test_collision_stop_puts_the_vehicle_back_and_goes_on() -> None:
    """collision='stop': the colliding tick pays the penalty, the vehicle is back at the pose
    the tick began from with zero velocity, the episode is not terminated, and driving away
    from the wall works; the default still terminates."""
    for mode, ends in (("terminate", True), ("stop", False)):
        env = gym.make("rndx/AGVWarehouse-v0", collision=mode).unwrapped
        env.reset(seed=0, options={"start": (1.35, 6.0, math.pi)})  # 5 cm from the west wall
        env.core.v[:] = 1.0
        _, r, term, _, info = env.step(np.array([1.0, 0.0], np.float32))
        assert info["collision"] and r == pytest.approx(-0.1) and term == ends
        if mode == "stop":
            assert env.core.pos[0, 0] == pytest.approx(1.35) and env.core.v[0] == 0.0
            assert info["pose"][0] == pytest.approx(1.35)
            for _ in range(5):
                _, r, term, _, info = env.step(np.array([-1.0, 0.0], np.float32))
                assert not info["collision"] and not term and r == 0.0
            assert env.core.pos[0, 0] > 1.45
    vec = AGVWarehouseVectorEnv(num_envs=2, collision="stop", max_episode_steps=50)
    vec.reset(seed=0)
    vec.core.place(0, {"start": (1.35, 6.0, math.pi)})
    vec.core.v[:] = 1.0
    _, _, term, trunc, infos = vec.step(np.array([[1.0, 0.0], [0.0, 0.0]], np.float32))
    assert infos["collision"][0] and not term[0] and not trunc[0]
    with pytest.raises(ValueError, match="collision='bounce'"):
        AGVConfig(collision="bounce")


@pytest.mark.parametrize("n_envs", [0, 2.5, "4", True])
def test_make_sb3_vec_env_names_a_bad_env_count(n_envs) -> None:
    with pytest.raises(ValueError, match=rf"n_envs={n_envs!r} must be an integer >= 1"):
        make_sb3_vec_env("rndx/AGVWarehouse-v0", n_envs, 0)
