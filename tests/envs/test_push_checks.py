"""rndx/MujocoPush-v0: reset placements, a fixed obstacle and constructor values are checked."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco")

from rndx.envs.mujoco import push_expert  # noqa: E402

PUSH = "rndx/MujocoPush-v0"


@pytest.fixture(scope="module")
def env():
    e = gym.make(PUSH).unwrapped
    yield e
    e.close()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"block": (1.0, 1.0)}, r"block=\(1\.0, 1\.0\).*allowed"),
        ({"pusher": (0.5, 0.5)}, r"pusher=\(0\.5, 0\.5\).*0\.285"),
        ({"pusher": (0, 0), "block": (0, 0)}, "pusher=.*block=.*overlaps the block"),
        ({"block": (0.1,)}, r"block=\(0\.1,\)"),
        ({"block": (math.nan, 0)}, "block=.*finite"),
        ({"block": "ab"}, "block='ab'"),
        ({"goal": (0.3, 0.0)}, r"goal=\(0\.3, 0\.0\).*0\.27"),
        ({"block": (0.1, 0.1), "goal": (0.11, 0.1)}, "inside the goal region"),
        ({"obstacle": (0.0, 0.0), "block": (0.03, 0.0)}, "overlaps the obstacle"),
        ({"obstacle": (0.0, 0.0), "pusher": (0.04, 0.0)}, "pusher.*overlaps the obstacle"),
        ({"obstacle": (0.1, 0.1), "goal": (0.12, 0.1)}, "under the obstacle"),
        ({"foo": 1}, r"unknown reset option\(s\) \['foo'\]"),
        ("notadict", r"options='notadict' must be a dict with keys among \["),
    ],
)
def test_bad_placements_are_named(env, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)


def test_good_placements_are_exact(env) -> None:
    env.reset(seed=0, options={"block": (0.27, 0.0, 0.0), "goal": (0.0, 0.0), "pusher": (0.0, 0.2)})
    np.testing.assert_allclose(env.block_xy, (0.27, 0.0))
    np.testing.assert_allclose(env.pusher_xy, (0.0, 0.2))
    # an explicit block gets a sampled goal clear of it
    for s in range(10):
        _, info = env.reset(seed=s, options={"block": (0.1, 0.1)})
        assert info["distance"] >= env.config.goal_radius


def test_fixed_obstacle_keeps_the_block_still(env) -> None:
    for s in range(30):
        env.reset(seed=s, options={"obstacle": (0.0, 0.0)})
        before = env.block_xy
        env.step(np.zeros(2, np.float32))
        assert np.hypot(*(env.block_xy - before)) < 1e-3, s
    a = env.reset(seed=7, options={"obstacle": (0.0, 0.0)})[0]
    b = env.reset(seed=7, options={"obstacle": (0.0, 0.0)})[0]
    np.testing.assert_array_equal(a, b)


def test_obstacle_without_room_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"obstacle=\(0\.0, 0\.0\) leaves"):
        gym.make(PUSH, obstacle=(0.0, 0.0), block_range=0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": -5}, r"width=-5 must be an integer in \[1, 4096\]"),
        ({"width": 5000}, "width=5000"),
        ({"height": 2.5}, "height=2.5"),
        ({"width": True}, "width=True"),
        ({"goal_reward": math.nan}, "goal_reward=nan"),
        ({"progress_coef": -1.0}, "progress_coef=-1.0"),
        ({"goal_radius": 0.0}, "goal_radius=0.0"),
        ({"min_goal_distance": math.inf}, "min_goal_distance=inf"),
        ({"block_range": math.nan}, "block_range=nan"),
        ({"pusher_range": "x"}, "pusher_range='x'"),
        ({"frame_skip": True}, "frame_skip=True"),
    ],
)
def test_bad_constructor_values_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gym.make(PUSH, **kwargs)


def test_large_frames_render() -> None:
    e = gym.make(PUSH, render_mode="rgb_array", width=800, height=600)
    e.reset(seed=0)
    assert e.render().shape == (600, 800, 3)
    e.close()


def test_check_env_and_expert_still_pass() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(PUSH).unwrapped, skip_render_check=True)
    e = gym.make(PUSH)
    wins = 0
    for s in range(3):
        obs, _ = e.reset(seed=10_000 + s)
        done = False
        while not done:
            obs, _, term, trunc, info = e.step(push_expert(obs))
            done = term or trunc
        wins += info["is_success"]
    assert wins == 3
