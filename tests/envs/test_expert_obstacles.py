"""The scripted expert around moving obstacles, on hand-placed scenes in the small layout's
bottom aisle (y = 2, 1 m from the wall and the shelves): when it stops, when it backs off,
the obstacle velocities its rollouts use; and the seeds its reference success rate uses."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rndx  # noqa: F401  (registers the ids)
from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.envs.experts import AGVExpert, expert_success_rate

X, Y = 6.0, 2.0  # the vehicle, heading +x, standing still


def _scene(obstacle_xy, velocity=(0.0, 0.0)) -> AGVExpert:
    """One vehicle at (X, Y) and one pedestrian at ``obstacle_xy`` moving at ``velocity``."""
    core = AGVCore(1, AGVConfig(layout="small", n_pedestrians=1))
    core.seed([0])
    core.reset_envs(np.arange(1))
    core.pos[0], core.theta[0], core.v[0], core.w[0] = (X, Y), 0.0, 0.0, 0.0
    p0 = np.asarray(obstacle_xy, float)
    vel = np.asarray(velocity, float)
    speed = float(np.hypot(*vel))
    core.obs_p0[0, 0] = core.obs_pos[0, 0] = p0
    core.obs_p1[0, 0] = p0 + (vel / speed * 10.0 if speed else 0.0)
    core.obs_len[0, 0] = 10.0 if speed else 1.0
    core.obs_s[0, 0], core.obs_speed[0, 0] = 0.0, speed
    return AGVExpert(core)


def _gap_point(gap: float, bearing_deg: float) -> tuple[float, float]:
    """The obstacle centre ``gap`` metres (disc to disc) away at ``bearing_deg``."""
    d = gap + 0.3 + 0.25  # vehicle and pedestrian radii
    a = np.deg2rad(bearing_deg)
    return X + d * np.cos(a), Y + d * np.sin(a)


@pytest.mark.parametrize(
    ("gap", "bearing", "blocked"),
    [
        (1.0, 0.0, True),
        (1.0, 30.0, True),
        (1.0, 60.0, False),
        (1.0, 180.0, False),
        (1.5, 0.0, False),
    ],
)
def test_an_obstacle_blocks_within_the_stop_distance_inside_the_cone(
    gap: float, bearing: float, blocked: bool
) -> None:
    """Stop distance 1.2 m between the discs, cone +-40 degrees."""
    expert = _scene(_gap_point(gap, bearing))
    assert expert._blocked().tolist() == [blocked]


def test_a_blocked_vehicle_waits_and_an_unblocked_one_drives_on() -> None:
    """A standing pedestrian 1 m ahead: wait (even though creeping at 0.2 m/s would keep
    clear for the 2 s rollout); the same pedestrian behind: drive as planned."""
    assert _scene(_gap_point(1.0, 0.0))._avoid(np.array([0.2])).tolist() == [0.0]
    assert _scene(_gap_point(1.0, 180.0))._avoid(np.array([0.2])).tolist() == [0.2]


@pytest.mark.parametrize("gap", [1.5, 2.05])
def test_a_vehicle_backs_off_from_an_obstacle_that_would_run_it_over(gap: float) -> None:
    """A pedestrian 1.5 m (2.05 m) ahead walking at it at 1 m/s: driving ends in a
    collision within the 2 s rollout and waiting leaves -0.5 m (0.05 m, under the 0.15 m
    safety); backing off at 0.6 m/s keeps 0.5 m (1.1 m)."""
    expert = _scene(_gap_point(gap, 0.0), velocity=(-1.0, 0.0))
    assert expert._blocked().tolist() == [False]  # outside the stop distance: no cone stop
    assert expert._avoid(np.array([1.0])).tolist() == [-0.6]
    # whatever the plan says, the action backs off
    v_max = expert.core.cfg.v_max
    assert expert.act()[0, 0] == pytest.approx(-0.6 / v_max)


def test_obstacle_velocities_are_how_the_obstacles_move() -> None:
    """Against one control step of the core (obstacles turning at a segment end aside)."""
    spec = gym.spec("rndx/AGVWarehouseDynamic-v0")
    core = AGVCore(16, AGVConfig(**spec.kwargs))
    core.seed(list(range(16)))
    core.reset_envs(np.arange(16))
    expert = AGVExpert(core)
    before, s0 = core.obs_pos.copy(), core.obs_s.copy()
    vel = expert._obstacle_velocities()
    core.advance_obstacles()
    dt = core.cfg.dt
    turned = (s0 <= core.obs_len) != (core.obs_s <= core.obs_len)
    turned |= core.obs_s < s0  # past 2L: back at the start
    moving = (core.obs_speed > 0) & ~turned
    assert moving.sum() > 20
    np.testing.assert_allclose(((core.obs_pos - before) / dt)[moving], vel[moving], atol=1e-6)


class _SeedLog(gym.Wrapper):
    """Logs reset seeds; an episode succeeds when its seed is even."""

    def __init__(self, env) -> None:
        super().__init__(env)
        self.seeds: list[int] = []

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        if term or trunc:
            info = {**info, "is_success": self.seeds[-1] % 2 == 0}
        return obs, r, term, trunc, info


def test_the_reference_success_rate_plays_one_seed_per_episode() -> None:
    env = _SeedLog(gym.make("rndx/AGVWarehouse-v0", max_episode_steps=2))
    assert expert_success_rate(env, 5, seed=10) == pytest.approx(0.6)  # 10, 12, 14
    assert env.seeds == [10, 11, 12, 13, 14]
    env.close()
