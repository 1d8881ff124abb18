"""rndx/BulletAGVWarehouse-v0: moving goal marker, use after close, constructor checks,
determinism across episodes and pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rndx  # noqa: F401  (registers the envs)

pytest.importorskip("pybullet")
BULLET = "rndx/BulletAGVWarehouse-v0"


def test_moving_goal_marker_follows_the_goal() -> None:
    env = gym.make(BULLET, n_agvs=1, n_pedestrians=1, goal_speed=0.5).unwrapped
    env.reset(seed=0)
    start = env.core.goal[0].copy()
    for _ in range(30):
        env.step(np.zeros(2, dtype=np.float32))
    goal = env.core.goal[0]
    assert not np.allclose(goal, start)  # the goal did move
    marker = env.client.getBasePositionAndOrientation(env.goal_marker)[0]
    np.testing.assert_allclose(marker[:2], goal, atol=1e-6)
    env.close()


def test_reset_and_step_after_close_raise_a_clear_error() -> None:
    env = gym.make(BULLET)
    env.reset(seed=0)
    env.close()
    env.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed; make a new one"):
        env.reset(seed=0)
    with pytest.raises(RuntimeError, match="closed; make a new one"):
        env.unwrapped.step(np.zeros(2, dtype=np.float32))


@pytest.mark.parametrize("kw", [{"width": 0}, {"height": -3}, {"width": 10.5}, {"width": 99999}])
def test_frame_size_is_checked(kw: dict) -> None:
    name = next(iter(kw))
    with pytest.raises(ValueError, match=rf"{name}=.*\[1, 4096\]"):
        gym.make(BULLET, render_mode="rgb_array", **kw)


@pytest.mark.parametrize("ts", [0.0, -0.01, 1.0, 0.03, float("nan")])
def test_time_step_is_checked(ts: float) -> None:
    with pytest.raises(ValueError, match=r"time_step=.*\(0, dt="):
        gym.make(BULLET, time_step=ts)


def test_time_step_dividing_dt_is_accepted() -> None:
    env = gym.make(BULLET, time_step=0.05, render_mode="rgb_array", width=8, height=6).unwrapped
    assert env.substeps == round(env.config.dt / 0.05)
    env.reset(seed=0)
    assert env.render().shape == (6, 8, 3)
    env.close()


def _episode(env, seed: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Observations and poses of one episode under fixed actions, stepping on past a
    collision (the env does not stop anything; the contacts stay in the solver)."""
    obs, info = env.reset(seed=seed)
    seen, poses = [obs], [info["pose"]]
    for a in actions:
        obs, _, _, _, info = env.step(a)
        seen.append(obs)
        poses.append(info["pose"])
    return np.array(seen), np.array(poses)


@pytest.mark.parametrize("kwargs", [{}, {"n_agvs": 2, "n_pedestrians": 2}, {"goal_speed": 0.5}])
def test_an_episode_does_not_depend_on_the_episodes_before_it(kwargs: dict) -> None:
    """Same seed + same actions: the same episode bit for bit in an env that already ran
    others (with collisions, whose contacts the solver keeps) as in a fresh one."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(120, 2)).astype(np.float32)
    used = gym.make(BULLET, **kwargs).unwrapped
    for seed in (1, 2, 3):  # history: random driving, mostly into walls
        _episode(used, seed, rng.uniform(-1, 1, size=(80, 2)).astype(np.float32))
    fresh = gym.make(BULLET, **kwargs).unwrapped
    for got, want in zip(_episode(used, 42, actions), _episode(fresh, 42, actions)):
        np.testing.assert_array_equal(got, want)
    used.close()
    fresh.close()


def test_resets_do_not_grow_memory() -> None:
    """PyBullet keeps ~11 KB per loadURDF + removeBody pair; the robot is loaded once, so
    2000 resets (22 MB if it were reloaded each time) leave the resident memory flat."""
    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("needs /proc/self/status (Linux) to read the resident memory")

    def resident_kb() -> int:
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])

    env = gym.make(BULLET).unwrapped
    for seed in range(200):  # warm-up: allocator pools
        env.reset(seed=seed)
    before = resident_kb()
    for seed in range(2000):
        env.reset(seed=seed)
    grown = resident_kb() - before
    env.close()
    assert grown < 4000, f"{grown} KB more after 2000 resets"


def test_making_an_env_prints_nothing(capfd: pytest.CaptureFixture) -> None:
    """pybullet_utils' BulletClient connects with an options string, and PyBullet then prints
    'argv[0]=' per env: 400 lines in one monitor evaluation of 50-env batches."""
    import pybullet  # noqa: F401  (its one-time 'build time' banner is not ours)

    capfd.readouterr()
    for _ in range(2):
        env = gym.make(BULLET)
        env.reset(seed=0)
        env.close()
    out, err = capfd.readouterr()
    assert "argv" not in out + err


def test_an_env_dropped_without_close_frees_its_physics_server() -> None:
    import gc

    import pybullet

    env = gym.make(BULLET).unwrapped
    server = env.client._id
    assert pybullet.isConnected(physicsClientId=server)
    del env
    gc.collect()
    assert not pybullet.isConnected(physicsClientId=server)


def _drive(env, actions: np.ndarray) -> list[tuple]:
    """Every step's outputs under fixed actions, resetting (unseeded: from the env's own
    generator) at each episode end."""
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info["pose"]))
        if terminated or truncated:
            out.append((env.reset()[0],))
    return out


@pytest.mark.parametrize("kwargs", [{}, {"n_agvs": 2, "n_pedestrians": 2}])
def test_a_pickled_env_goes_on_bit_for_bit(kwargs: dict) -> None:
    """Pickled in mid-episode, after earlier episodes (each reset gives the robot's colliders
    new broadphase ids) with the robot resting on its wheels (contact manifolds whose
    warm-start impulses the next steps use), the copy continues exactly as the original;
    the original is not disturbed by being pickled. (Resumed training runs rely on it.)"""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(700, 2)).astype(np.float32)
    env = gym.make(BULLET, **kwargs)
    env.reset(seed=3)
    history = _drive(env, actions[:400])
    assert sum(len(step) == 1 for step in history) >= 2  # resets happened before the pickle
    copy = pickle.loads(pickle.dumps(env))
    assert copy.unwrapped.client._id != env.unwrapped.client._id  # its own physics server
    want, got = _drive(env, actions[400:]), _drive(copy, actions[400:])
    assert len(got) == len(want)
    for step_got, step_want in zip(got, want):
        for a, b in zip(step_got, step_want):
            np.testing.assert_array_equal(a, b)
    env.close()
    copy.close()


def test_an_env_pickled_before_its_first_reset_runs_as_a_fresh_one() -> None:
    actions = np.random.default_rng(1).uniform(-1, 1, size=(200, 2)).astype(np.float32)
    fresh, copy = gym.make(BULLET), pickle.loads(pickle.dumps(gym.make(BULLET)))
    fresh.reset(seed=7)
    copy.reset(seed=7)
    for a, b in zip(_drive(fresh, actions), _drive(copy, actions)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_a_closed_env_does_not_pickle() -> None:
    env = gym.make(BULLET).unwrapped
    env.close()
    with pytest.raises(RuntimeError, match="env is closed"):
        pickle.dumps(env)
