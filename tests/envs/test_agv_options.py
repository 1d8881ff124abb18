"""AGVConfig rejects out-of-range option values, naming the keyword, the value and the range;
the single env takes actions of shape (2,) only, the batched faces (n, 2); reset options are
checked (shape, finite, on the floor and clear of walls and shelves) by every face."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import rndx  # noqa: F401  (registers the ids)
from rndx.envs.agv import AGVSB3VecEnv, AGVWarehouseVectorEnv
from rndx.envs.agv.core import COUNTS, NON_NEGATIVE, POSITIVE, AGVConfig, validate_actions
from rndx.envs.shifts import make_shifted_env


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
    with pytest.raises(ValueError, match=r"n_agvs=(np\.)?True_? must be an integer >= 0"):
        AGVConfig(n_agvs=np.bool_(True))


# --------------------------------------------------------------------------- reset options
FREE = "allowed: a free \\(x, y\\) on the 18 x 12 m floor"
RADIUS_CLEAR = f"{FREE} with the vehicle's 0.3 m radius clear"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": (math.nan, 1.0, 0.0)}, r"start=\(nan, 1.0, 0.0\) must be \(x, y, heading\)"),
        ({"start": (8.0, 6.0, math.inf)}, r"start=\(8.0, 6.0, inf\) must be .*3 finite numbers"),
        ({"start": (2.0, 2.0)}, r"start=\(2.0, 2.0\) must be .*\(got shape \(2,\)\)"),
        ({"start": ("8", 6.0, 0.0)}, r"start=\('8', 6.0, 0.0\) must be \(x, y, heading\)"),
        ({"start": [[8.0, 6.0], [0.0]]}, r"start=\[\[8.0, 6.0\], \[0.0\]\] must be"),
        ({"start": (0, 0, 0)}, rf"start=\(0, 0, 0\) is inside a wall or shelf; {RADIUS_CLEAR}$"),
        ({"start": (5.0, 8.0, 0.0)}, r"start=\(5.0, 8.0, 0.0\) is inside a wall or shelf"),
        (
            {"start": (-50, 0, 0)},
            rf"start=\(-50, 0, 0\) is off the 18 x 12 m floor; {RADIUS_CLEAR}",
        ),
        ({"start": (1.2, 6.0, 0.0)}, rf"is 0.20 m from a wall or shelf; {RADIUS_CLEAR}"),
        ({"goal": (-50, 0)}, rf"goal=\(-50, 0\) is off the 18 x 12 m floor; {FREE}$"),
        ({"goal": (5.0, 8.0)}, rf"goal=\(5.0, 8.0\) is inside a wall or shelf; {FREE}$"),
        ({"goal": (0.5, 6.0)}, r"goal=\(0.5, 6.0\) is inside a wall or shelf"),
        ({"goal": (15.5, math.nan)}, r"goal=\(15.5, nan\) must be \(x, y\): 2 finite numbers"),
        ({"goal": (15.5, 2.5, 0.0)}, r"goal=\(15.5, 2.5, 0.0\) must be .*\(got shape \(3,\)\)"),
        (
            {"goal_path": ((1.5, 8.0), (15.5, 8.0))},
            r"goal_path=.* has the point \(3.0\d, 8.00\) inside a wall or shelf",
        ),
        ({"goal_path": ((15.5, 2.5), (25.0, 2.5))}, r"has the point \(18.0\d, 2.50\) off the"),
        ({"goal_path": (15.5, 2.5)}, r"goal_path=\(15.5, 2.5\) must be \(\(x0, y0\), \(x1, y1\)\)"),
        ({"obstacles": [(10.0, 6.0)]}, r"obstacles=\[\(10.0, 6.0\)\] must be 0 \(x, y\)"),
        (
            {"goall": (15.5, 2.5)},
            r"unknown reset option\(s\) \['goall'\]; allowed: \['drop', 'goal', ",
        ),
    ],
)
def test_bad_reset_options_name_option_value_and_what_is_allowed(options, message) -> None:
    env = gym.make("rndx/AGVWarehouse-v0")
    with pytest.raises(ValueError, match=message):
        env.reset(seed=0, options=options)
    env.reset(seed=0)  # the env is still usable


def test_a_goal_the_vehicle_cannot_get_within_goal_radius_of_raises() -> None:
    env = gym.make("rndx/AGVWarehouse-v0", goal_radius=0.1)
    with pytest.raises(
        ValueError,
        match=r"goal=\(1.05, 6.0\) is 0.05 m from a wall or shelf; "
        r".* at least 0.2 m \(radius - goal_radius\) from walls and shelves",
    ):
        env.reset(seed=0, options={"goal": (1.05, 6.0)})
    env.reset(seed=0, options={"goal": (1.25, 6.0)})


def test_obstacle_options_are_checked_per_obstacle() -> None:
    env = gym.make("rndx/AGVWarehouseDynamic-v0")
    m = env.unwrapped.core.m
    with pytest.raises(ValueError, match=rf"must be {m} \(x, y\).*\(got shape \({m - 1}, 2\)\)"):
        env.reset(seed=0, options={"obstacles": [(10.0, 6.0)] * (m - 1)})
    with pytest.raises(ValueError, match=r"has the point \(5.00, 8.00\) inside a wall or shelf"):
        env.reset(seed=0, options={"obstacles": [(10.0, 6.0)] * (m - 1) + [(5.0, 8.0)]})
    with pytest.raises(ValueError, match=r"must be"):
        env.reset(seed=0, options={"obstacles": [(10.0, math.nan)] * m})


def test_good_reset_options_place_exactly() -> None:
    """Edge cases that are allowed: a start 1 cm more than the radius from a wall, a goal by a
    wall (within goal_radius of where the vehicle fits), numpy arrays, any finite heading."""
    env = gym.make("rndx/AGVWarehouse-v0")
    obs, _ = env.reset(seed=0, options={"start": np.array([1.31, 6.0, 7.0]), "goal": (1.05, 2.5)})
    core = env.unwrapped.core
    np.testing.assert_array_equal(core.pos[0], (1.31, 6.0))
    np.testing.assert_array_equal(core.goal[0], (1.05, 2.5))
    assert core.theta[0] == 7.0 and np.isfinite(obs).all()
    _, reward, terminated, *_ = env.step(np.zeros(2, np.float32))
    assert reward == 0.0 and not terminated


def test_vector_faces_check_reset_options_the_same_way() -> None:
    vec = AGVWarehouseVectorEnv(num_envs=2)
    with pytest.raises(ValueError, match=r"start=\(0, 0, 0\) is inside a wall or shelf"):
        vec.reset(seed=0, options={"start": (0, 0, 0)})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['goall'\]"):
        vec.reset(seed=0, options={"goall": (15.5, 2.5)})
    vec.reset(seed=0, options={"goal": (15.5, 2.5)})
    np.testing.assert_array_equal(vec.core.goal, [(15.5, 2.5)] * 2)
    sb3 = AGVSB3VecEnv(num_envs=2)
    sb3.set_options([{"goal": (15.5, 2.5)}, {"goal": (-50, 0)}])  # per-env options
    with pytest.raises(ValueError, match=r"goal=\(-50, 0\) is off the 18 x 12 m floor"):
        sb3.reset()
    sb3.set_options({"start": (8.0, 6.0, math.nan)})
    with pytest.raises(ValueError, match=r"start=\(8.0, 6.0, nan\) must be"):
        sb3.reset()


def test_bullet_env_checks_reset_options() -> None:
    pytest.importorskip("pybullet")
    env = gym.make("rndx/BulletAGVWarehouse-v0")
    with pytest.raises(ValueError, match=r"start=\(2.0, 2.0\) must be \(x, y, heading\)"):
        env.reset(seed=0, options={"start": (2.0, 2.0)})
    env.close()


@pytest.mark.parametrize("name", ["goal_shift", "clutter_far"])
def test_shift_reset_hooks_pass_the_option_checks(name: str) -> None:
    """The AGV shifts place goals and clutter through the same checked path."""
    for layout in ("small", "procedural"):
        env = make_shifted_env("rndx/AGVWarehouse-v0", name, seed=0, layout=layout)
        for seed in range(20):
            obs, _ = env.reset(seed=seed)
            assert np.isfinite(obs).all()
        env.close()


@pytest.mark.parametrize("options", [[], 0, "", ()])
@pytest.mark.parametrize("face", ["single", "vector", "bullet"])
def test_falsy_options_that_are_not_a_dict_are_named(face: str, options) -> None:
    """options=[] or 0 was skipped as 'no options' (a truthiness check); only None is."""
    if face == "bullet":
        pytest.importorskip("pybullet")
        env = gym.make("rndx/BulletAGVWarehouse-v0")
    elif face == "vector":
        env = AGVWarehouseVectorEnv(num_envs=2)
    else:
        env = gym.make("rndx/AGVWarehouse-v0")
    try:
        with pytest.raises(ValueError, match=r"options=.* must be a dict with keys among"):
            env.reset(seed=0, options=options)
        env.reset(seed=0, options={})  # an empty dict is no options
        env.reset(seed=0, options=None)
    finally:
        env.close()
