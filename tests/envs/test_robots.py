"""Robot tasks with contact physics: rndx/BulletAGVWarehouse-v0 (PyBullet) and
rndx/MujocoPush-v0 (MuJoCo), plus any Gymnasium id through make_sb3_vec_env."""

from __future__ import annotations

import math
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import DependencyNotInstalled
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rndx  # noqa: F401  (registers the ids)
from rndx.envs import ROBOT_IDS, make_sb3_vec_env
from rndx.envs.mujoco import SHIFTS, push_expert
from tests.envs.test_agv import _drive_forward, _rollout

BULLET, PUSH = "rndx/BulletAGVWarehouse-v0", "rndx/MujocoPush-v0"
ENGINES = {BULLET: "pybullet", PUSH: "mujoco"}


# --------------------------------------------------------------------------- both envs
def test_robot_ids_are_registered_with_time_limits() -> None:
    for env_id in ROBOT_IDS:
        assert gym.spec(env_id).max_episode_steps > 0


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
def test_gymnasium_and_sb3_check_env(env_id: str) -> None:
    check_env(gym.make(env_id).unwrapped)
    sb3_check_env(gym.make(env_id))


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
def test_same_seed_same_trajectory(env_id: str) -> None:
    """Through episode ends too: the Bullet AGV collides often under random actions."""
    a = _rollout(gym.make(env_id, max_episode_steps=40), 7, 120)
    b = _rollout(gym.make(env_id, max_episode_steps=40), 7, 120)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[4], y[4])
        assert x[1:4] == y[1:4]
    c = _rollout(gym.make(env_id, max_episode_steps=40), 8, 5)
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
def test_rendered_frame_is_not_blank(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    env.step(np.array([0.5, 0.2], np.float32))
    frame = env.render()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    colours = np.unique(frame.reshape(-1, 3), axis=0)
    assert len(colours) > 20 and frame.std() > 10.0, (len(colours), frame.std())
    env.close()


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
@pytest.mark.parametrize(
    "action", [np.zeros(3), np.zeros((2, 2)), np.zeros((1, 2)), [np.nan, 0.0], [0.0, np.inf]]
)
def test_bad_actions_raise(env_id: str, action) -> None:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.asarray(action, dtype=np.float64))


@pytest.mark.parametrize("env_id", [BULLET, PUSH, "rndx/AGVWarehouse-v0"])
def test_non_real_actions_are_named(env_id: str) -> None:
    """Object arrays of strings took the single env's fast path (float() raised numpy's
    'could not convert'), and complex actions lost their imaginary part silently."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    for action in (np.array(["a", "b"], dtype=object), np.array([1 + 1j, 0])):
        with pytest.raises(ValueError, match=r"is not numeric; expected floats of shape \(2,\)"):
            env.step(action)
    env.step(np.array([0.5, 0.1], dtype=object))  # numbers in an object array are fine


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
def test_out_of_range_actions_are_clipped(env_id: str) -> None:
    a, b = gym.make(env_id).unwrapped, gym.make(env_id).unwrapped
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(5):
        oa = a.step(np.array([5.0, -7.0]))[0]
        ob = b.step(np.array([1.0, -1.0]))[0]
    np.testing.assert_array_equal(oa, ob)


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
def test_missing_engine_names_the_install_line(
    env_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = ENGINES[env_id]
    monkeypatch.setitem(sys.modules, engine, None)  # `import engine` now raises ImportError
    with pytest.raises(DependencyNotInstalled, match=rf"{env_id}.*pip install \"{engine}>="):
        gym.make(env_id)


@pytest.mark.parametrize("env_id", [BULLET, PUSH])
def test_unknown_option_is_named(env_id: str) -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        gym.make(env_id, no_such_option=1)


# --------------------------------------------------------------------------- Bullet AGV
def test_bullet_has_the_2d_envs_contract() -> None:
    for kwargs in ({}, {"task": "pick_drop", "layout": "pick_drop"}, {"n_beams": 16}):
        b, k = gym.make(BULLET, **kwargs), gym.make("rndx/AGVWarehouse-v0", **kwargs)
        assert b.observation_space == k.observation_space
        assert b.action_space == k.action_space


def test_bullet_lidar_and_start_match_the_2d_env() -> None:
    """Same seed, same start and goal; PyBullet's ray tests see the 2D env's boxes."""
    b, k = gym.make(BULLET).unwrapped, gym.make("rndx/AGVWarehouse-v0").unwrapped
    for seed in range(3):
        ob, ib = b.reset(seed=seed)
        ok, ik = k.reset(seed=seed)
        np.testing.assert_allclose(ib["pose"], ik["pose"], atol=1e-6)
        np.testing.assert_allclose(ob, ok, atol=2e-3)  # ranges / 8 m: within 1.6 cm


def test_bullet_robot_drives_like_the_2d_vehicle() -> None:
    """Wheel velocity control tracks the commanded (v, w): after 1.5 s (about 1.5 m) of
    driving and turning in the open aisle the robot is within 10 cm and 0.1 rad of the
    kinematic vehicle (measured: 6.6 cm, 0.07 rad; the robot has yaw inertia and wheel slip,
    the 2D vehicle has neither)."""
    opts = {"start": (2.0, 6.0, 0.0), "goal": (15.5, 2.5)}
    b, k = gym.make(BULLET).unwrapped, gym.make("rndx/AGVWarehouse-v0").unwrapped
    b.reset(seed=0, options=opts)
    k.reset(seed=0, options=opts)
    for i in range(15):
        a = np.array([1.0, 0.3 if i < 8 else -0.3], np.float32)
        ob, *_, ib = b.step(a)
        ok, *_, ik = k.step(a)
    assert np.hypot(*(ib["pose"][:2] - ik["pose"][:2])) < 0.10
    heading_b, heading_k = (math.atan2(i["pose"][3], i["pose"][2]) for i in (ib, ik))
    assert abs(heading_b - heading_k) < 0.10
    assert ob[-2] > 0.9  # measured speed near v_max, as commanded


@pytest.mark.parametrize("gain", [1.0, 0.35])
def test_bullet_robot_reverses_with_a_negative_speed_and_obeys_the_gain(gain: float) -> None:
    """Driving backwards the observed speed is negative (the 2D core's sign); actuator_gain
    (the actuator_loss shift) scales the commanded speed as in 2D."""
    opts = {"start": (8.0, 6.0, 0.0), "goal": (15.5, 2.5)}
    b = gym.make(BULLET, actuator_gain=gain).unwrapped
    k = gym.make("rndx/AGVWarehouse-v0", actuator_gain=gain).unwrapped
    b.reset(seed=0, options=opts)
    k.reset(seed=0, options=opts)
    for _ in range(12):
        ob, *_ = b.step(np.array([-1.0, 0.0], np.float32))
        ok, *_ = k.step(np.array([-1.0, 0.0], np.float32))
    assert ok[-2] == pytest.approx(-gain)  # 2D: at the gained limit
    assert ob[-2] < 0 and abs(ob[-2] - ok[-2]) < 0.1


def test_bullet_collision_is_a_contact_and_is_penalised() -> None:
    env = gym.make(BULLET, collision_penalty=0.25).unwrapped
    env.reset(seed=0, options={"start": (2.6, 8.0, 0.0), "goal": (15.5, 2.5)})
    (*_, r), term, info = _drive_forward(env, 20)
    assert term and info["collision"] and not info["is_success"]
    assert r == pytest.approx(-0.25) and info["reward_collision"] == pytest.approx(-0.25)
    x = info["pose"][0]
    assert 2.6 < x < 3.0 - 0.3 + 0.02  # stopped at the shelf face (x = 3), not through it


def test_bullet_sparse_and_dense_rewards() -> None:
    env = gym.make(BULLET).unwrapped
    env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (8.55, 6.0)})
    rewards, term, info = _drive_forward(env, 10)
    assert term and info["is_success"] and rewards[-1] == pytest.approx(1.0)
    assert all(r == 0.0 for r in rewards[:-1])
    dense = gym.make(BULLET, reward="dense", progress_coef=1.0).unwrapped
    dense.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "goal": (14.0, 6.0)})
    for _ in range(3):
        _, r, *_, info = dense.step(np.array([1.0, 0.0], np.float32))
    assert r > 0 and r == pytest.approx(info["reward_progress"])


def test_bullet_pick_then_drop() -> None:
    env = gym.make(BULLET, task="pick_drop", layout="pick_drop").unwrapped
    env.reset(seed=0)
    core = env.core
    pick, drop = core.goal[0].copy(), core.final_goal[0].copy()
    env.reset(seed=0, options={"start": (*(pick - (0.55, 0.0)), 0.0)})
    for _ in range(10):
        obs, r, term, _, info = env.step(np.array([1.0, 0.0], np.float32))
        if info["picked"]:
            break
    assert info["picked"] and not term and r == pytest.approx(0.5) and obs[-1] == 1.0
    np.testing.assert_array_equal(core.goal[0], drop)
    marker = env.client.getBasePositionAndOrientation(env.goal_marker)[0]
    np.testing.assert_allclose(marker[:2], drop)  # the drawn goal moved to the drop station


def test_bullet_lidar_sees_obstacle_agvs() -> None:
    env = gym.make(BULLET, n_agvs=1, agv_radius=0.45, lidar_range=8.0).unwrapped
    obs, _ = env.reset(seed=0, options={"start": (8.0, 6.0, 0.0), "obstacles": [(10.0, 6.0)]})
    beam = int(np.argmin(np.abs(np.angle(np.exp(1j * env.core.beam_offsets)))))
    assert obs[beam] * 8.0 == pytest.approx(2.0 - 0.45, abs=0.01)


# --------------------------------------------------------------------------- MuJoCo push
def _expert_episodes(n: int, seed: int = 0, **kwargs) -> tuple[float, list[int]]:
    env = gym.make(PUSH, **kwargs)
    successes, lengths = 0, []
    for ep in range(n):
        obs, _ = env.reset(seed=seed + ep)
        steps, done = 0, False
        while not done:
            obs, _, term, trunc, info = env.step(push_expert(obs))
            steps, done = steps + 1, term or trunc
        successes += info["is_success"]
        lengths.append(steps)
    return successes / n, lengths


def test_push_expert_solves_the_task() -> None:
    rate, lengths = _expert_episodes(200, seed=10_000)
    print(
        f"\n[push expert] success {rate:.3f} over 200 episodes, mean {np.mean(lengths):.1f} steps"
    )
    assert rate >= 0.9


def test_push_expert_is_batched() -> None:
    env = gym.make(PUSH)
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    batched = push_expert(obs)
    assert batched.shape == (5, 2) and np.all(np.abs(batched) <= 1.0)
    np.testing.assert_array_equal(batched[2], push_expert(obs[2]))


def test_push_sparse_reward_only_on_success() -> None:
    env = gym.make(PUSH).unwrapped
    obs, _ = env.reset(
        seed=0, options={"block": (0.0, 0.0, 0.0), "goal": (0.1, 0.0), "pusher": (-0.1, 0.0)}
    )
    rewards, term, info = _drive_forward(env, 60)
    assert term and info["is_success"] and info["distance"] < 0.05
    assert rewards[-1] == 1.0 and set(rewards[:-1]) == {0.0}
    dense = gym.make(PUSH, reward="dense").unwrapped
    dense.reset(
        seed=0, options={"block": (0.0, 0.0, 0.0), "goal": (0.2, 0.0), "pusher": (-0.05, 0.0)}
    )
    steps = [dense.step(np.array([1.0, 0.0], np.float32)) for _ in range(8)]
    total = sum(s[1] for s in steps)
    moved = 0.2 - steps[-1][4]["distance"]
    assert not any(s[2] for s in steps)  # no success yet: all of it is progress
    assert total == pytest.approx(moved) and 0.05 < moved < 0.15  # metres towards the goal


def test_push_shifts_change_the_physics() -> None:
    nominal = gym.make(PUSH).unwrapped
    heavy = gym.make(PUSH, block_mass=1.0, block_friction=1.2).unwrapped
    nominal.reset(seed=3)
    heavy.reset(seed=3)
    block = heavy.model.body("block").id
    assert heavy.model.body_mass[block] == pytest.approx(1.0)
    assert heavy.model.geom_friction[heavy.model.geom("block").id, 0] == pytest.approx(1.2)
    # the same expert needs longer for a heavier, grippier block
    _, base = _expert_episodes(10, seed=50)
    _, slow = _expert_episodes(10, seed=50, block_mass=1.0, block_friction=1.2)
    assert np.mean(slow) > np.mean(base)


def test_push_goal_offset_and_obstacle_shifts() -> None:
    a = gym.make(PUSH).unwrapped
    b = gym.make(PUSH, goal_offset=(0.05, -0.03)).unwrapped
    a.reset(seed=4)
    b.reset(seed=4)
    np.testing.assert_allclose(b.goal - a.goal, (0.05, -0.03), atol=1e-12)
    assert a.obstacle_xy is None
    # the offset goal keeps min_goal_distance from the block, as a nominal one does: never a
    # start inside the goal region (it was in 4% of goal_offset=(0.1, 0.1) episodes)
    c = gym.make(PUSH, goal_offset=(0.1, 0.1)).unwrapped
    same = 0
    for seed in range(10000, 10200):
        a.reset(seed=seed)
        c.reset(seed=seed)
        np.testing.assert_array_equal(c.data.qpos[2:4], a.data.qpos[2:4])
        assert np.hypot(*(c.goal - c.data.qpos[2:4])) >= c.config.min_goal_distance
        same += bool(np.allclose(c.goal - a.goal, (0.1, 0.1)))  # not clipped nor redrawn
    assert same > 100
    rate, _ = _expert_episodes(10, seed=60, obstacle="path")
    assert rate <= 0.3  # the obstacle sits on the straight push: the expert gets stuck


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_named_push_shifts_are_valid_kwargs_and_options(name: str) -> None:
    made = gym.make(PUSH, **SHIFTS[name]).unwrapped
    opts = gym.make(PUSH).unwrapped
    a, _ = made.reset(seed=5)
    b, _ = opts.reset(seed=5, options=SHIFTS[name])
    np.testing.assert_array_equal(a, b)
    assert made.shifts == opts.shifts


def test_push_shift_in_reset_options_lasts_one_episode() -> None:
    env = gym.make(PUSH).unwrapped
    env.reset(seed=0, options={"block_mass": 0.7, "obstacle": (0.2, 0.2)})
    block = env.model.body("block").id
    assert env.model.body_mass[block] == pytest.approx(0.7)
    np.testing.assert_allclose(env.data.mocap_pos[0, :2], (0.2, 0.2))
    env.reset()
    assert env.model.body_mass[block] == pytest.approx(0.1) and env.obstacle_xy is None
    assert env.data.mocap_pos[0, 2] < 0  # parked under the table again


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_mass": 0.0}, "block_mass=0.0"),
        ({"block_friction": -1}, "block_friction=-1"),
        ({"goal_offset": (0.1,)}, "goal_offset"),
        ({"obstacle": "wall"}, "obstacle='wall'.*'path'"),
        ({"obstacle": (0.5, 0.0)}, "obstacle"),
        ({"reward": "shaped"}, "reward='shaped'"),
    ],
)
def test_push_bad_shift_values_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(PUSH, **kwargs)
    if "reward" not in kwargs:  # shifts are reset options too, validated the same way
        with pytest.raises(ValueError, match=match):
            gym.make(PUSH).reset(seed=0, options=kwargs)


def test_chunk_policy_trains_and_runs_on_push() -> None:
    """Demos from the push expert -> behaviour cloning -> the policy acts on the env (also
    under a shift) and exposes embed / sample_chunks for the monitor."""
    from rndx.agents.chunk_flow import behaviour_clone, from_demos
    from rndx.demos import record

    demos = record(PUSH, 16, seed=0, max_episode_steps=200)
    assert demos.success_rate >= 0.9 and demos.obs.shape[1] == 16
    env = gym.make(PUSH, obstacle="path")
    policy = from_demos(
        demos,
        env.observation_space,
        env.action_space,
        0,
        horizon=8,
        execute=4,
        embedding_dim=16,
        encoder_hidden=[32],
        velocity_hidden=[32],
        flow_steps=4,
    )
    losses = behaviour_clone(policy, demos, steps=150, batch_size=64, log_every=10)
    assert losses[-1] < losses[0]
    obs, _ = env.reset(seed=1)
    assert policy.embed(obs).shape == (16,)
    chunks = policy.sample_chunks(obs, 12, seed=0)
    assert chunks.shape == (12, 8, 2) and np.all(np.abs(chunks) <= 1.0)
    for t in range(10):
        action, _ = policy.predict(obs[None], episode_start=np.array([t == 0]))
        obs, *_ = env.step(action[0])


# --------------------------------------------------------------------------- any gym id
def test_make_sb3_vec_env_takes_any_gymnasium_id() -> None:
    venv = make_sb3_vec_env("Pendulum-v1", 2, seed=0, max_episode_steps=5)
    venv.reset()
    for _ in range(5):
        *_, dones, infos = venv.step(np.zeros((2, 1), np.float32))
    assert dones.all() and infos[0]["episode"]["l"] == 5
    with pytest.raises(ValueError, match="no_such_package"):
        make_sb3_vec_env("no_such_package:Foo-v0", 1, 0)
    with pytest.raises(ValueError, match="'package:Id'"):
        make_sb3_vec_env("PointMaze_NoSuch-v9", 1, 0)


def test_package_ids_are_imported_and_dict_observations_flattened() -> None:
    pytest.importorskip("gymnasium_robotics")
    venv = make_sb3_vec_env("gymnasium_robotics:PointMaze_UMaze-v3", 2, seed=0)
    assert isinstance(venv.observation_space, gym.spaces.Box)
    assert venv.reset().shape == (2, venv.observation_space.shape[0])


def test_push_obstacle_blocks_from_the_first_episode_of_a_fresh_env() -> None:
    """Regression: MuJoCo's broadphase also filters by the obstacle BODY's collision flags;
    they must be switched on with the geom's, or the first episode's obstacle is a ghost."""
    for first in (True, False):
        env = gym.make(PUSH, obstacle=(0.1, 0.0)).unwrapped
        if not first:
            env.reset(seed=0)
        env.reset(seed=1, options={"pusher": (-0.1, 0.0), "block": (0.0, 0.0, 0.0)})
        for _ in range(60):  # 3 s at 0.25 m/s: far past the obstacle if it were not there
            env.step(np.array([1.0, 0.0], dtype=np.float32))
        assert env.block_xy[0] < 0.1 - 0.05, first  # stopped at the obstacle's face


def test_bullet_agv_rejects_action_repeat_and_collision_stop() -> None:
    with pytest.raises(ValueError, match="action_repeat=2"):
        gym.make(BULLET, action_repeat=2)
    with pytest.raises(ValueError, match="collision='stop'"):
        gym.make(BULLET, collision="stop")


def test_a_robot_vec_env_names_a_batch_of_the_wrong_shape() -> None:
    """SB3's DummyVecEnv indexes actions[i]: a wrong batch failed inside it (IndexError, or
    'action has shape ()' from each env)."""
    from rndx.envs import make_sb3_vec_env

    venv = make_sb3_vec_env(PUSH, 3, 0)
    venv.reset()
    for actions in (np.zeros((2, 2)), 1, np.zeros(2), np.zeros(6)):
        with pytest.raises(ValueError, match=r"for 3 envs; expected \(3, 2\)"):
            venv.step(actions)
    venv.step(np.zeros((3, 2)))
    assert len(venv.envs) == 3  # SB3's attributes still reach the wrapped DummyVecEnv
    venv.close()
