"""The AGV shift suite on rndx/BulletAGVWarehouse-v0: same names and options as the 2D env,
reset hooks that move the PyBullet bodies, and labelled rollouts."""

from __future__ import annotations

import numpy as np
import pytest

from rndx.envs.experts import expert_success_rate
from rndx.envs.shifts import AGV_SHIFTS, known_shifts, make_shifted_env
from rndx.monitors.rollouts import run_rollouts

pytest.importorskip("pybullet")
BULLET = "rndx/BulletAGVWarehouse-v0"


def test_the_bullet_agv_has_the_2d_suite() -> None:
    assert known_shifts(BULLET) == list(AGV_SHIFTS)


@pytest.mark.parametrize("name", list(AGV_SHIFTS))
def test_every_shift_builds_and_steps_in_bullet(name: str) -> None:
    env = make_shifted_env(BULLET, name, seed=1)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    cfg = env.unwrapped.config
    for key, value in AGV_SHIFTS[name].options(1).items():
        assert getattr(cfg, key) == (tuple(value) if isinstance(value, list) else value)
    for _ in range(3):
        obs, _, term, trunc, info = env.step(env.action_space.sample())
        if term or trunc:
            break
    env.close()


def _body_xy(env, body: int) -> np.ndarray:
    return np.asarray(env.client.getBasePositionAndOrientation(body)[0][:2])


def test_reset_hooks_move_the_bodies_and_the_observation_sees_them() -> None:
    """goal_shift's goal and clutter_far's clutter are where the core put them, in PyBullet
    too, and the first observation is PyBullet's ray test of that scene."""
    env = make_shifted_env(BULLET, "clutter_far", seed=0)
    base = env.unwrapped
    plain = make_shifted_env(BULLET, "nominal", seed=0, n_pedestrians=3, n_agvs=0).unwrapped
    moved = 0
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        for j, body in enumerate(base.obstacles):
            np.testing.assert_allclose(_body_xy(base, body), base.core.obs_pos[0, j], atol=1e-9)
        np.testing.assert_array_equal(obs, base._observe())  # noiseless lidar: deterministic
        plain_obs, _ = plain.reset(seed=seed)  # same start, obstacles where they walk
        moved += not np.allclose(plain.core.obs_pos[0], base.core.obs_pos[0])
    assert moved == 4
    env.close()
    plain.close()

    env = make_shifted_env(BULLET, "goal_shift", seed=0)
    base = env.unwrapped
    ref = make_shifted_env(BULLET, "nominal", seed=0).unwrapped
    obs, _ = env.reset(seed=5)
    ref_obs, _ = ref.reset(seed=5)
    shift = np.hypot(*(base.core.goal[0] - ref.core.goal[0]))
    assert 0.0 < shift <= 0.4 + 1e-9
    np.testing.assert_allclose(_body_xy(base, base.goal_marker), base.core.goal[0], atol=1e-9)
    n = base.config.n_beams
    assert obs[n] != ref_obs[n]  # the observed goal distance is the shifted goal's
    env.close()
    ref.close()


def _expert_success(name: str, episodes: int) -> float:
    env = make_shifted_env(BULLET, name, seed=0)
    rate = expert_success_rate(env, episodes)
    env.close()
    return rate


def test_the_crowd_defeats_the_expert_that_solves_nominal_bullet() -> None:
    """The scripted expert (privileged state, pure pursuit) drives the PyBullet robot to the
    goal; a crowd of pedestrians in the aisles makes it fail (measured over 40 episodes:
    nominal 1.00, crowd 0.20, as in the 2D env)."""
    assert _expert_success("nominal", 8) == 1.0
    assert _expert_success("crowd", 8) <= 0.5


class Forward:
    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.tile([1.0, 0.0], (len(obs), 1)), state


def test_bullet_rollouts_under_a_shift_are_labelled_by_the_env() -> None:
    rolls = run_rollouts(Forward(), BULLET, 2, seed=0, max_episode_steps=150, shift="lidar_noise")
    assert len(rolls) == 2
    assert all(r.collision and not r.success for r in rolls)
    clean = run_rollouts(Forward(), BULLET, 1, seed=0, max_episode_steps=150)
    n = len(clean[0].obs[0]) - 5
    # the same first pose, but noisy / dropped beams
    assert not np.allclose(rolls[0].obs[0][:n], clean[0].obs[0][:n])
    np.testing.assert_allclose(rolls[0].obs[0][n:], clean[0].obs[0][n:], atol=1e-6)
