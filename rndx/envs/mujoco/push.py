"""rndx/MujocoPush-v0: push a block to a goal region on a table, with MuJoCo contact physics."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rndx.envs.agv.core import validate_actions
from rndx.envs.deps import require

ENV_ID = "rndx/MujocoPush-v0"
ASSET = Path(__file__).resolve().parent / "assets" / "push.xml"
HALF = 0.03  # block half size (m), as in push.xml
PUSHER_RADIUS = 0.015  # as in push.xml
OBSTACLE_HALF = 0.03  # obstacle half size (m), as in push.xml
FIELD = 0.3  # the rim's inner edge: |x|, |y| <= FIELD
REACH = FIELD - HALF  # farthest a block centre can go
REWARDS = ("sparse", "dense")
OBS_DIM = 16
# Everything reset(options=...) accepts: placements for one episode, and the shifts.
SHIFT_KEYS = ("block_mass", "block_friction", "goal_offset", "obstacle")
# Named distribution shifts for the runtime monitor: keywords for gym.make(ENV_ID, **shift) or
# reset options. Nominal: block_mass 0.1 kg, block_friction 0.5, no goal offset, no obstacle.
# goal_nudge is benign (the goal moves well inside its 5 cm radius: success should not change),
# for the monitor's false alarms; the others are meant to cause failures.
SHIFTS: dict[str, dict[str, Any]] = {
    "nominal": {},
    "goal_nudge": {"goal_offset": (0.02, -0.02)},
    "heavy_block": {"block_mass": 1.0},
    "high_friction": {"block_friction": 1.5},
    "goal_offset": {"goal_offset": (0.1, 0.1)},
    "obstacle": {"obstacle": "path"},
}
PLACE_KEYS = ("pusher", "block", "goal")


@dataclass
class PushConfig:
    """Every option of :class:`MujocoPushEnv` except ``render_mode``, ``width``, ``height``."""

    reward: str = "sparse"
    goal_reward: float = 1.0
    progress_coef: float = 1.0
    goal_radius: float = 0.05
    min_goal_distance: float = 0.12
    frame_skip: int = 10
    block_range: float = 0.15
    goal_range: float = 0.2
    pusher_range: float = 0.25
    # distribution shifts (the runtime monitor's test conditions); the defaults are nominal
    block_mass: float = 0.1
    block_friction: float = 0.5
    goal_offset: tuple[float, float] = (0.0, 0.0)
    obstacle: Any = None

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r}; allowed: {list(REWARDS)}")
        if not (isinstance(self.frame_skip, int) and self.frame_skip >= 1):
            raise ValueError(f"frame_skip={self.frame_skip!r} must be an int >= 1")
        for name in ("goal_radius", "min_goal_distance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        for name in ("block_range", "goal_range"):
            if not 0 <= getattr(self, name) <= REACH:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, {REACH}]")
        if not 0 <= self.pusher_range <= FIELD - PUSHER_RADIUS:
            raise ValueError(
                f"pusher_range={self.pusher_range!r} must be in [0, {FIELD - PUSHER_RADIUS}]"
            )
        shifts = check_shifts({k: getattr(self, k) for k in SHIFT_KEYS})
        for k, v in shifts.items():
            setattr(self, k, v)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> PushConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(
                f"unknown MujocoPush option(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**kwargs)


def check_shifts(shifts: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise shift values; each error names the value and what is allowed."""
    out = dict(shifts)
    for name in ("block_mass", "block_friction"):
        if name in out:
            v = out[name]
            try:
                f = float(v)
            except (TypeError, ValueError):
                f = math.nan
            if not (math.isfinite(f) and f > 0) or isinstance(v, bool):
                raise ValueError(f"{name}={v!r} must be a finite number > 0")
            out[name] = f
    if "goal_offset" in out:
        off = np.asarray(out["goal_offset"], dtype=np.float64)
        if off.shape != (2,) or not np.isfinite(off).all():
            raise ValueError(
                f"goal_offset={out['goal_offset']!r} must be two finite numbers (dx, dy)"
            )
        out["goal_offset"] = (float(off[0]), float(off[1]))
    if "obstacle" in out:
        ob = out["obstacle"]
        if ob is not None and not (isinstance(ob, str) and ob == "path"):
            try:
                xy = np.asarray(ob, dtype=np.float64)
            except (TypeError, ValueError):
                xy = np.zeros(0)
            if xy.shape != (2,) or not np.isfinite(xy).all() or np.abs(xy).max() > REACH:
                raise ValueError(
                    f"obstacle={ob!r}; allowed: None, 'path' (between block and goal) or "
                    f"(x, y) with |x|, |y| <= {REACH}"
                )
            out["obstacle"] = (float(xy[0]), float(xy[1]))
    return out


def block_yaw(quat: np.ndarray) -> float:
    """Yaw (rad) of a unit quaternion (w, x, y, z)."""
    w, x, y, z = quat
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


class MujocoPushEnv(gym.Env):
    """A round pusher pushes a cube across a table into a goal region (MuJoCo physics).

    ## Description
    A table with a low rim bounds a 0.6 m x 0.6 m field. A pusher (cylinder, radius 1.5 cm)
    slides in x and y under velocity servos; it touches only the block (6 cm cube, 0.1 kg by
    default) and, under the obstacle shift, the obstacle. Block-table and block-pusher contacts
    use the block's friction coefficient. The model is ``assets/push.xml``.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: the pusher's commanded velocity (x, y) as fractions of
    ``v_max`` = 0.25 m/s. Finite values outside [-1, 1] are clipped; a wrong shape, NaN or
    inf raises ``ValueError``.

    ## Observation Space
    ``Box(float32, (16,))``, positions in metres in the table frame: pusher (x, y), pusher
    velocity / v_max, block (x, y), cos and sin of 4 x block yaw (the cube looks the same
    every 90 degrees), block velocity / v_max, goal (x, y), block - pusher, goal - block.
    The obstacle is not observed. ``info["pose"]`` is the block's (x, y, cos yaw, sin yaw).

    ## Reward
    ``sparse`` (default): ``goal_reward`` (+1) when the block's centre enters the goal
    region (``goal_radius`` = 5 cm), else 0. ``dense`` adds ``progress_coef`` x the decrease
    of the block-goal distance (metres). ``info`` holds ``reward_goal``, ``reward_progress``,
    ``distance`` and ``is_success``.

    ## Starting State
    Block uniform in ``|x|, |y| <= block_range`` with uniform yaw; goal uniform in
    ``|x|, |y| <= goal_range`` at least ``min_goal_distance`` from the block, then moved by
    ``goal_offset`` and clipped to the reachable field; pusher uniform in
    ``|x|, |y| <= pusher_range`` clear of the block and the obstacle. ``reset(options=...)``
    places ``pusher`` (x, y), ``block`` (x, y[, yaw]) and ``goal`` (x, y) exactly.

    ## Shifts (for the runtime monitor)
    Constructor keywords, or ``reset(options=...)`` for one episode (the next reset without
    them returns to the constructor's values): ``block_mass`` (kg, default 0.1),
    ``block_friction`` (sliding coefficient, default 0.5), ``goal_offset`` (dx, dy) in metres
    added to the sampled goal, ``obstacle``: None (default), ``"path"`` (a 6 cm box halfway
    from the block to the goal, at least 9.5 cm from the block) or a fixed (x, y).

    ## Episode End
    Terminated on success. Truncation is owned by ``TimeLimit`` (200 steps = 10 s).

    ## Arguments
    ``render_mode`` (None or ``"rgb_array"``), ``width`` and ``height`` of rendered frames,
    and every field of :class:`PushConfig` as a keyword.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self, render_mode: str | None = None, width: int = 480, height: int = 360, **kwargs: Any
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; allowed: None, 'rgb_array'")
        self.mujoco = require("mujoco", ENV_ID)
        self.config = PushConfig.from_kwargs(**kwargs)
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        mj = self.mujoco
        self.model = mj.MjModel.from_xml_path(str(ASSET))
        self.data = mj.MjData(self.model)
        m = self.model
        self._block_body = m.body("block").id
        self._block_geom = m.geom("block").id
        self._obstacle = m.geom("obstacle").id
        self._goal_site = m.site("goal").id
        self._mass0 = float(m.body_mass[self._block_body])
        self._inertia0 = m.body_inertia[self._block_body].copy()
        self._obstacle_rgba = np.array([0.8, 0.15, 0.15, 1.0])
        self.v_max = float(m.actuator_ctrlrange[0, 1])
        self.dt = m.opt.timestep * self.config.frame_skip
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.dt))}
        self.goal = np.zeros(2)
        self.shifts: dict[str, Any] = {}
        self.obstacle_xy: np.ndarray | None = None
        self._prev_dist = 0.0
        self._renderer = None
        high = np.array(
            [0.35] * 2 + [4.0] * 2 + [0.35] * 2 + [1.0] * 2 + [4.0] * 2 + [0.35] * 2 + [0.7] * 4,
            dtype=np.float32,
        )
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    # ------------------------------------------------------------------ state
    @property
    def pusher_xy(self) -> np.ndarray:
        return self.data.qpos[0:2].copy()

    @property
    def block_xy(self) -> np.ndarray:
        return self.data.qpos[2:4].copy()

    def _apply_shifts(self, shifts: dict[str, Any]) -> None:
        m = self.model
        mass = shifts["block_mass"]
        m.body_mass[self._block_body] = mass
        m.body_inertia[self._block_body] = self._inertia0 * (mass / self._mass0)
        m.geom_friction[self._block_geom, 0] = shifts["block_friction"]
        self.mujoco.mj_setConst(m, self.data)  # derived quantities (invweight0, ...) of the mass
        self.shifts = shifts

    def _place_obstacle(self, xy: np.ndarray | None) -> None:
        m, g = self.model, self._obstacle
        b = m.geom_bodyid[g]
        self.obstacle_xy = None if xy is None else np.asarray(xy, dtype=np.float64)
        on = 0 if xy is None else 1
        # the broadphase filters by the BODY's flags too (derived from its geoms only by
        # mj_setConst): without setting them the obstacle collides with nothing in the first
        # episode of a freshly built env
        m.geom_contype[g] = m.geom_conaffinity[g] = on
        m.body_contype[b] = m.body_conaffinity[b] = on
        if xy is None:
            self.data.mocap_pos[0] = (0.0, 0.0, -1.0)
            m.geom_rgba[g, 3] = 0.0
        else:
            self.data.mocap_pos[0] = (xy[0], xy[1], 0.04)
            m.geom_rgba[g] = self._obstacle_rgba

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        opts = dict(options or {})
        unknown = set(opts) - set(SHIFT_KEYS) - set(PLACE_KEYS)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; allowed: "
                f"{sorted(SHIFT_KEYS + PLACE_KEYS)}"
            )
        cfg, rng, mj = self.config, self.np_random, self.mujoco
        shifts = {k: getattr(cfg, k) for k in SHIFT_KEYS}
        shifts.update(check_shifts({k: opts[k] for k in SHIFT_KEYS if k in opts}))
        self._apply_shifts(shifts)
        mj.mj_resetData(self.model, self.data)

        block = rng.uniform(-cfg.block_range, cfg.block_range, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        best, best_d = None, -1.0
        for _ in range(100):
            g = rng.uniform(-cfg.goal_range, cfg.goal_range, 2)
            d = float(np.hypot(*(g - block)))
            if d > best_d:
                best, best_d = g, d
            if d >= cfg.min_goal_distance:
                break
        goal = best
        if "block" in opts:
            b = np.asarray(opts["block"], dtype=np.float64)
            block, yaw = b[:2], (float(b[2]) if len(b) > 2 else yaw)
        if "goal" in opts:
            goal = np.asarray(opts["goal"], dtype=np.float64)
        goal = np.clip(goal + np.asarray(shifts["goal_offset"]), -REACH, REACH)
        self.goal = goal
        self._place_obstacle(self._obstacle_position(shifts["obstacle"], block, goal))

        clear = HALF * math.sqrt(2) + PUSHER_RADIUS + 0.01
        pusher = None
        for _ in range(200):
            p = rng.uniform(-cfg.pusher_range, cfg.pusher_range, 2)
            ok = np.hypot(*(p - block)) > clear
            if ok and self.obstacle_xy is not None:
                ok = np.abs(p - self.obstacle_xy).max() > OBSTACLE_HALF + PUSHER_RADIUS + 0.01
            if ok:
                pusher = p
                break
        if "pusher" in opts:
            pusher = np.asarray(opts["pusher"], dtype=np.float64)
        if pusher is None:
            raise ValueError("no free pusher start found: the block or obstacle covers the field")

        qpos = self.data.qpos
        qpos[0:2] = pusher
        qpos[2:5] = (block[0], block[1], HALF)
        qpos[5:9] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        self.model.site_pos[self._goal_site, :2] = goal
        mj.mj_forward(self.model, self.data)
        self._prev_dist = float(np.hypot(*(goal - block)))
        return self._obs(), {"pose": self._pose(), "distance": self._prev_dist}

    def _obstacle_position(self, spec: Any, block: np.ndarray, goal: np.ndarray) -> Any:
        if spec is None:
            return None
        if not isinstance(spec, str):
            return np.asarray(spec, dtype=np.float64)
        d = goal - block
        dist = max(float(np.hypot(*d)), 1e-9)
        # halfway, but never touching the block: corner-to-corner gap of at least 1 cm
        along = max(0.5 * dist, (HALF + OBSTACLE_HALF) * math.sqrt(2) + 0.01)
        return np.clip(block + d / dist * along, -REACH, REACH)

    # ------------------------------------------------------------------ stepping
    def step(self, action):
        a = validate_actions(action, 1, single=True)[0]
        self.data.ctrl[:] = a * self.v_max
        self.mujoco.mj_step(self.model, self.data, nstep=self.config.frame_skip)
        cfg = self.config
        dist = float(np.hypot(*(self.goal - self.data.qpos[2:4])))
        success = dist < cfg.goal_radius
        r_goal = cfg.goal_reward if success else 0.0
        r_prog = cfg.progress_coef * (self._prev_dist - dist) if cfg.reward == "dense" else 0.0
        self._prev_dist = dist
        info = {
            "pose": self._pose(),
            "is_success": bool(success),
            "distance": dist,
            "reward_goal": r_goal,
            "reward_progress": r_prog,
        }
        return self._obs(), float(r_goal + r_prog), bool(success), False, info

    def _pose(self) -> np.ndarray:
        yaw = block_yaw(self.data.qpos[5:9])
        x, y = self.data.qpos[2:4]
        return np.array([x, y, math.cos(yaw), math.sin(yaw)], dtype=np.float32)

    def _obs(self) -> np.ndarray:
        q, v = self.data.qpos, self.data.qvel
        pusher, block = q[0:2], q[2:4]
        yaw4 = 4.0 * block_yaw(q[5:9])
        obs = np.concatenate(
            [
                pusher,
                v[0:2] / self.v_max,
                block,
                (math.cos(yaw4), math.sin(yaw4)),
                v[2:4] / self.v_max,
                self.goal,
                block - pusher,
                self.goal - block,
            ]
        ).astype(np.float32)
        return np.clip(obs, self.observation_space.low, self.observation_space.high)

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = self.mujoco.Renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
