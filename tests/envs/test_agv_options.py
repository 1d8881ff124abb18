"""AGVConfig rejects out-of-range option values, naming the keyword, the value and the range;
the single env takes actions of shape (2,) only, the batched faces (n, 2)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rndx  # noqa: F401  (registers the ids)
from rndx.envs.agv import AGVSB3VecEnv, AGVWarehouseVectorEnv
from rndx.envs.agv.core import COUNTS, NON_NEGATIVE, POSITIVE, AGVConfig, validate_actions


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lidar_noise": -1}, r"lidar_noise=-1 must be >= 0"),
        ({"goal_radius": -1}, r"goal_radius=-1 must be > 0"),
        ({"goal_radius": 0.0}, r"goal_radius=0.0 must be > 0"),
        ({"actuator_gain": -1}, r"actuator_gain=-1 must be >= 0"),
        ({"collision_penalty": -0.1}, r"collision_penalty=-0.1 must be >= 0"),
        ({"min_goal_distance": -3}, r"min_goal_distance=-3 must be >= 0"),
        ({"agv_speed": -1.0}, r"agv_speed=-1.0 must be >= 0"),
        ({"agv_radius": 0}, r"agv_radius=0 must be > 0"),
        ({"pedestrian_radius": -0.25}, r"pedestrian_radius=-0.25 must be > 0"),
        ({"dt": float("inf")}, r"dt=inf must be a finite number > 0"),
        ({"goal_reward": float("nan")}, r"goal_reward=nan must be a finite number >= 0"),
        ({"v_max": "fast"}, r"v_max='fast' must be a finite number > 0"),
        ({"lidar_dropout": -0.1}, r"lidar_dropout=-0.1 must be in \[0, 1\)"),
        ({"n_beams": 1.5}, r"n_beams=1.5 must be an integer >= 1"),
        ({"n_agvs": -1}, r"n_agvs=-1 must be an integer >= 0"),
        ({"n_pedestrians": 0.5}, r"n_pedestrians=0.5 must be an integer >= 0"),
        ({"layout_seed": -1}, r"layout_seed=-1 must be an integer >= 0"),
        ({"pedestrian_speed": (1.3, 0.5)}, r"pedestrian_speed=\(1.3, 0.5\) must be \(low, high\)"),
        ({"pedestrian_speed": (-1.0, 0.5)}, r"0 <= low <= high"),
        ({"pedestrian_speed": (0.5,)}, r"pedestrian_speed=\(0.5,\)"),
    ],
)
def test_out_of_range_options_name_keyword_value_and_range(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        gym.make("rndx/AGVWarehouse-v0", **kwargs)


@pytest.mark.parametrize("name", NON_NEGATIVE)
def test_zero_is_allowed_where_it_means_something(name: str) -> None:
    AGVConfig(**{name: 0})
    with pytest.raises(ValueError, match=f"{name}=-0.5 must be >= 0"):
        AGVConfig(**{name: -0.5})


@pytest.mark.parametrize("name", POSITIVE)
def test_positive_options_reject_zero(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}=0 must be > 0"):
        AGVConfig(**{name: 0})


def test_every_numeric_option_is_checked() -> None:
    """A new numeric option of AGVConfig must be added to POSITIVE, NON_NEGATIVE or COUNTS."""
    defaults = AGVConfig().to_dict()
    floats = {k for k, v in defaults.items() if type(v) is float}
    assert floats == set(POSITIVE) | set(NON_NEGATIVE) | {"lidar_dropout"}
    assert {k for k, v in defaults.items() if type(v) is int} == set(COUNTS)


def test_whole_float_counts_become_ints() -> None:
    cfg = AGVConfig(n_beams=16.0, n_agvs=2.0, layout_seed=3.0)
    assert (cfg.n_beams, cfg.n_agvs, cfg.layout_seed) == (16, 2, 3)
    assert isinstance(cfg.n_beams, int)


@pytest.mark.parametrize("shape", [(1, 2), (2, 1), (1, 1, 2)])
def test_single_env_rejects_batched_action_shapes(shape) -> None:
    env = gym.make("rndx/AGVWarehouse-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=rf"action has shape \({shape[0]}, .*expected \(2,\)"):
        env.step(np.zeros(shape, np.float32))


def test_batched_faces_of_one_env_take_a_batch_of_one() -> None:
    vec = AGVWarehouseVectorEnv(num_envs=1, max_episode_steps=5)
    vec.reset(seed=0)
    vec.step(np.zeros((1, 2), np.float32))
    sb3 = AGVSB3VecEnv(num_envs=1, max_episode_steps=5)
    sb3.reset()
    sb3.step(np.zeros((1, 2), np.float32))
    assert validate_actions(np.zeros(2), 1).shape == (1, 2)
    with pytest.raises(ValueError, match=r"shape \(2, 2\); expected \(1, 2\)"):
        validate_actions(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(3, 2\)"):
        validate_actions(np.zeros(2), 3)


def test_numpy_scalars_are_numbers() -> None:
    cfg = AGVConfig(n_agvs=np.int64(2), n_beams=np.int32(16), goal_radius=np.float32(0.4))
    assert (cfg.n_agvs, cfg.n_beams) == (2, 16) and type(cfg.n_agvs) is int
    with pytest.raises(ValueError, match="n_agvs=True must be an integer >= 0"):
        AGVConfig(n_agvs=np.bool_(True))
