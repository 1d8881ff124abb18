"""The single-vehicle Gymnasium face of the AGV warehouse."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rndx.envs.agv.core import AGVConfig, AGVCore, validate_actions


def step_info(core: AGVCore, events: dict[str, np.ndarray], i: int | slice) -> dict[str, Any]:
    """The per-step info of vehicle(s) ``i``: pose, success flag and every reward term."""
    return {
        "pose": core.poses()[i].copy(),
        "is_success": events["success"][i],
        "collision": events["collision"][i],
        "picked": events["picked"][i],
        "reward_goal": events["reward_goal"][i],
        "reward_collision": events["reward_collision"][i],
        "reward_progress": events["reward_progress"][i],
    }


class AGVWarehouseEnv(gym.Env):
    """An automated guided vehicle drives through a warehouse to a goal.

    ## Description
    A differential-drive vehicle (radius 0.3 m) moves with continuous position and heading
    through a warehouse of walls, shelf rows and aisles (a named ASCII layout from
    ``configs/layouts``, your own layout file: ``layout="path/to/file.txt"``, or, for
    ``layout="procedural"``, one generated from ``layout_seed``). Other AGVs drive up and down
    aisles and pedestrians walk between waypoints when ``n_agvs`` / ``n_pedestrians`` > 0.
    Task ``reach``: reach a goal sampled in the layout's 'G' cells. Task ``pick_drop``: reach
    the pick station 'P', then the drop station 'D'. With ``goal_speed`` > 0 (task ``reach``)
    the goal moves back and forth along ``goal_travel`` metres of the aisle nearest to its
    sampled point, and the observed goal distance and bearing follow it.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: linear and angular velocity commands as fractions of
    ``v_max`` (1.5 m/s) and ``w_max`` (1.5 rad/s). Velocities follow the commands within the
    acceleration limits ``a_max`` and ``alpha_max``. Finite values outside [-1, 1] are
    clipped; a shape other than (2,) (a batch such as (1, 2) included), NaN or inf raises
    ``ValueError``. With ``action_repeat`` k > 1 a step holds the command for k ticks of
    ``dt`` (frame skip): it ends early at the tick with a collision or success, the reward
    terms are summed over its ticks, and ``max_episode_steps`` counts steps, not ticks.

    ## Observation Space
    ``Box(float32, (n_beams + 5 [+1] [+4],))``: lidar ranges / ``lidar_range`` in [0, 1]
    (360°, beam 0 points backwards, counter-clockwise), goal distance / layout diagonal, goal
    bearing (cos, sin) in the vehicle frame, v / v_max, w / w_max, for ``pick_drop`` a
    carrying flag, and with ``observe_pose`` the pose (x / width, y / height, cos, sin of the
    heading). The pose (x, y, cos, sin) is always in ``info["pose"]``.

    ## Reward
    ``sparse`` (default): ``goal_reward`` (+1) on success, ``-collision_penalty`` on a
    collision, 0 otherwise; ``pick_reward`` when the pick station is reached. ``dense`` adds
    ``progress_coef`` x the decrease of the straight-line goal distance. Every term is in
    ``info`` (``reward_goal``, ``reward_collision``, ``reward_progress``), with ``is_success``.

    ## Starting State
    Position uniform in a random 'S' cell (keeping clearance), heading uniform; the goal at
    least ``min_goal_distance`` away. ``reset(options={"start": (x, y, heading),
    "goal": (x, y)})`` places them exactly (for ``pick_drop`` ``goal`` is the pick station and
    ``"drop": (x, y)`` the drop station); ``"goal_path": ((x0, y0), (x1, y1))`` sets a
    moving goal's path and ``"obstacles"`` (one (x, y) per AGV and pedestrian) freezes the
    moving obstacles there. They are checked like actions: an unknown key, a wrong length,
    NaN or inf, a point off the floor or inside a wall or shelf, a start without the vehicle's
    radius clear, or a goal (or goal path) closer to a wall than ``radius - goal_radius``
    raises ``ValueError`` naming the option, the value and what is allowed. The vector faces
    apply the same options (SB3: ``set_options``, also per env) with the same checks.

    ## Episode End
    Terminated on success or on a collision with a wall, shelf, AGV or pedestrian (with
    ``collision="stop"`` a collision instead puts the vehicle back where the tick began with
    zero velocity and the episode goes on, the penalty paid at each colliding tick). Truncation
    is owned by ``TimeLimit`` (``max_episode_steps`` of the registered id).

    ## Arguments
    Every field of :class:`rndx.envs.agv.core.AGVConfig` as a keyword, plus ``render_mode``.
    A value out of its range (a negative noise, gain, speed or reward term; a radius, time step
    or range that is not > 0; a count that is not a whole number) raises ``ValueError`` naming
    the keyword, the value and the allowed range.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; allowed: None, 'rgb_array'")
        self.render_mode = render_mode
        self.config = AGVConfig.from_kwargs(**kwargs)
        self.core = AGVCore(1, self.config, track_env=0 if render_mode else -1)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.config.dt))}
        low, high = self.core.observation_bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.core.rngs = [self.np_random]  # all randomness from the env's own generator
        self.core.reset_envs(np.array([0]))
        if options is not None:  # checked even when falsy: options=[] is an error
            self.core.place(0, options)
        return self.sync_placement(), {"pose": self.core.poses()[0].copy()}

    def sync_placement(self) -> np.ndarray:
        """The observation after the core's goal or obstacles were edited (by ``reset`` or a
        shift's reset hook, :class:`rndx.envs.shifts.ShiftWrapper`); the Bullet AGV's method
        of the same name also moves its bodies."""
        return self.core.observe()[0]

    def step(self, action):
        a = validate_actions(action, 1, single=True)
        reward, events = self.core.step(a)
        obs = self.core.observe()[0]
        terminated = bool(self.core.terminal(events)[0])
        info = step_info(self.core, events, 0)
        info["is_success"] = bool(info["is_success"])
        return obs, float(reward[0]), terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from rndx.envs.agv.render import render_frame

        return render_frame(self.core, 0)
