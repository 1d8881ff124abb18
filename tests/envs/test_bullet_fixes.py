"""rndx/BulletAGVWarehouse-v0: moving goal marker, use after close, constructor checks."""

from __future__ import annotations

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
