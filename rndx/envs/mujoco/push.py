"""rndx/MujocoPush-v0: push a block to a goal region on a table, with MuJoCo contact physics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rndx.envs.agv.core import validate_actions
from rndx.envs.deps import require
from rndx.utils.checks import MAX_FRAME, finite_number, whole_number

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
CORNER = HALF * math.sqrt(2)  # the block's corner radius: its footprint at any yaw
PUSHER_REACH = FIELD - PUSHER_RADIUS  # farthest a pusher centre can go (push.xml joint range)
ANY_YAW_REACH = FIELD - CORNER  # farthest a block centre can go whatever its yaw
MARGIN = 0.01  # the sampler's gap between sampled objects (m)
MIN_FREE = 0.05  # a fixed obstacle must leave this fraction of the block's start area free


def obstacle_room(obstacle: tuple[float, float], block_range: float) -> float:
    """Fraction of the block's start square ``|x|, |y| <= block_range`` that keeps a block of
    any yaw at least MARGIN clear of a fixed obstacle at ``obstacle`` (what the sampler draws
    from)."""
    reach = OBSTACLE_HALF + CORNER + MARGIN
    o = np.asarray(obstacle, dtype=np.float64)
    if block_range == 0:
        return float(np.abs(o).max() > reach)
    lo = np.maximum(o - reach, -block_range)
    hi = np.minimum(o + reach, block_range)
    covered = float(np.prod(np.clip(hi - lo, 0.0, None)))
    return 1.0 - covered / (2.0 * block_range) ** 2


def check_obstacle_room(obstacle: Any, block_range: float) -> None:
    """Reject a fixed obstacle that leaves the block (almost) no room to start."""
    if obstacle is None or isinstance(obstacle, str):
        return
    room = obstacle_room(obstacle, block_range)
    if room < MIN_FREE:
        raise ValueError(
            f"obstacle={obstacle!r} leaves {room:.0%} of the block's start area "
            f"(|x|, |y| <= block_range={block_range}) free; at least {MIN_FREE:.0%} must be at "
            f"least {OBSTACLE_HALF + CORNER + MARGIN:.4f} m (Chebyshev) from the obstacle"
        )


def _rect_gap(c1: np.ndarray, yaw1: float, h1: float, c2: np.ndarray, yaw2: float, h2: float):
    """Largest separating gap between two squares (centre, yaw, half size) by the separating
    axis theorem: > 0 apart, <= 0 touching or overlapping."""
    d = np.asarray(c2, dtype=np.float64) - np.asarray(c1, dtype=np.float64)
    gap = -math.inf
    for yaw in (yaw1, yaw2):
        for ax in ((math.cos(yaw), math.sin(yaw)), (-math.sin(yaw), math.cos(yaw))):
            r1 = h1 * (
                abs(ax[0] * math.cos(yaw1) + ax[1] * math.sin(yaw1))
                + abs(-ax[0] * math.sin(yaw1) + ax[1] * math.cos(yaw1))
            )
            r2 = h2 * (
                abs(ax[0] * math.cos(yaw2) + ax[1] * math.sin(yaw2))
                + abs(-ax[0] * math.sin(yaw2) + ax[1] * math.cos(yaw2))
            )
            gap = max(gap, abs(d[0] * ax[0] + d[1] * ax[1]) - r1 - r2)
    return gap


def _point_to_block(p: np.ndarray, block: np.ndarray, yaw: float) -> float:
    """Distance from point ``p`` to the footprint of the block (0 inside)."""
    dx, dy = np.asarray(p, dtype=np.float64) - block
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([c * dx + s * dy, -s * dx + c * dy])
    return float(np.hypot(*np.clip(np.abs(local) - HALF, 0.0, None)))


def _xy(a: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(x), 4) for x in a)


def check_place(name: str, value: Any) -> np.ndarray:
    """Validate one placement option of ``reset(options=...)``: shape, finite, reachable."""
    shapes = {"pusher": ((2,),), "block": ((2,), (3,)), "goal": ((2,),)}
    what = {
        "pusher": f"(x, y) with |x|, |y| <= {PUSHER_REACH} (the pusher's joint range)",
        "block": f"(x, y) with |x|, |y| <= {ANY_YAW_REACH:.4f} (clear of the rim at any yaw), "
        f"or (x, y, yaw) with |x|, |y| <= {FIELD} - {HALF} (|cos yaw| + |sin yaw|)",
        "goal": f"(x, y) with |x|, |y| <= {REACH} (where a block centre can go)",
    }[name]
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        v = np.zeros(0)
    ok = v.shape in shapes[name] and bool(np.isfinite(v).all())
    if ok:
        if name == "pusher":
            lim = PUSHER_REACH
        elif name == "goal":
            lim = REACH
        elif len(v) == 3:
            lim = FIELD - HALF * (abs(math.cos(v[2])) + abs(math.sin(v[2])))
        else:
            lim = ANY_YAW_REACH
        ok = float(np.abs(v[:2]).max()) <= lim + 1e-12
    if not ok:
        raise ValueError(f"reset option {name}={value!r}; allowed: {what}, all finite")
    return v


def _sample_far(
    rng: np.random.Generator,
    half_range: float,
    rejected: Callable[[np.ndarray], bool],
    distance: Callable[[np.ndarray], float],
    min_distance: float,
) -> np.ndarray | None:
    """A uniform (x, y) in [-half_range, half_range]^2 that is not ``rejected``, drawn until
    one is ``min_distance`` away by ``distance`` (the farthest of the first 100 accepted
    tries otherwise); None if all of 1000 draws are rejected. The draws are those of the
    samplers before this helper, so seeded episodes are unchanged."""
    best, best_d = None, -1.0
    for i in range(1000):
        c = rng.uniform(-half_range, half_range, 2)
        if rejected(c):
            continue
        d = distance(c)
        if d > best_d:
            best, best_d = c, d
        if d >= min_distance or i >= 99:
            break
    return best


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
        self.frame_skip = whole_number("frame_skip", self.frame_skip, 1)
        # rewards: any finite value >= 0 (0 switches a term off)
        for name in ("goal_reward", "progress_coef"):
            setattr(self, name, finite_number(name, getattr(self, name), 0.0))
        self.goal_radius = finite_number("goal_radius", self.goal_radius, 0.0, REACH, open_min=True)
        self.min_goal_distance = finite_number(
            "min_goal_distance",
            self.min_goal_distance,
            0.0,
            2 * math.sqrt(2) * REACH,
            open_min=True,
        )
        for name in ("block_range", "goal_range"):
            setattr(self, name, finite_number(name, getattr(self, name), 0.0, REACH))
        self.pusher_range = finite_number("pusher_range", self.pusher_range, 0.0, PUSHER_REACH)
        shifts = check_shifts({k: getattr(self, k) for k in SHIFT_KEYS})
        for k, v in shifts.items():
            setattr(self, k, v)
        check_obstacle_room(self.obstacle, self.block_range)

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
    ``|x|, |y| <= goal_range``, moved by ``goal_offset`` and clipped to the reachable field,
    at least ``min_goal_distance`` from the block; pusher uniform in
    ``|x|, |y| <= pusher_range`` clear of the block and the obstacle. A fixed obstacle also
    keeps the sampled block clear of it and the goal room for the block; one leaving under 5 %
    of the block's start area free is rejected. ``goal_offset`` keeps the nominal draws where
    the moved goal stays ``min_goal_distance`` from the block, and redraws the goal where it
    would not. ``reset(options=...)`` places ``pusher``
    (x, y), ``block`` (x, y[, yaw]) and ``goal`` (x, y) exactly; each is checked (shape,
    finite, inside the reachable field: pusher |x|, |y| <= 0.285, block clear of the rim,
    goal |x|, |y| <= 0.27) and the start is rejected with a ``ValueError`` naming the options
    when pusher, block and obstacle overlap, the block starts in the goal region or a fixed
    obstacle covers the goal; a goal sampled for a placed block is drawn outside it.

    ## Shifts (for the runtime monitor)
    Constructor keywords, or ``reset(options=...)`` for one episode (the next reset without
    them returns to the constructor's values): ``block_mass`` (kg, default 0.1),
    ``block_friction`` (sliding coefficient, default 0.5), ``goal_offset`` (dx, dy) in metres
    added to the sampled goal, ``obstacle``: None (default), ``"path"`` (a 6 cm box halfway
    from the block to the goal, at least 9.5 cm from the block) or a fixed (x, y).

    ## Episode End
    Terminated on success. Truncation is owned by ``TimeLimit`` (200 steps = 10 s).

    ## Arguments
    ``render_mode`` (None or ``"rgb_array"``), ``width`` and ``height`` of rendered frames
    (whole numbers in [1, 4096]; the offscreen framebuffer grows to fit),
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
        self.width = whole_number("width", width, 1, maximum=MAX_FRAME)
        self.height = whole_number("height", height, 1, maximum=MAX_FRAME)
        mj = self.mujoco
        self.model = mj.MjModel.from_xml_path(str(ASSET))
        # the offscreen framebuffer (push.xml: 640 x 480) must hold a frame: enlarge it
        vis = self.model.vis.global_
        vis.offwidth, vis.offheight = max(vis.offwidth, self.width), max(vis.offheight, self.height)
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
        allowed = sorted(SHIFT_KEYS + PLACE_KEYS)
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"options={options!r} must be a dict with keys among {allowed}")
        opts = dict(options or {})
        unknown = set(opts) - set(SHIFT_KEYS) - set(PLACE_KEYS)
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; allowed: {allowed}")
        cfg, rng, mj = self.config, self.np_random, self.mujoco
        shifts = {k: getattr(cfg, k) for k in SHIFT_KEYS}
        shifts.update(check_shifts({k: opts[k] for k in SHIFT_KEYS if k in opts}))
        if "obstacle" in opts:
            check_obstacle_room(shifts["obstacle"], cfg.block_range)
        place = {k: check_place(k, opts[k]) for k in PLACE_KEYS if k in opts}
        self._apply_shifts(shifts)
        mj.mj_resetData(self.model, self.data)

        fixed_ob = shifts["obstacle"]
        fixed_ob = None if fixed_ob is None or isinstance(fixed_ob, str) else np.asarray(fixed_ob)
        offset = np.asarray(shifts["goal_offset"])
        fixed_goal = np.clip(place["goal"] + offset, -REACH, REACH) if "goal" in place else None
        fixed_pusher = place.get("pusher")
        clear = CORNER + PUSHER_RADIUS + MARGIN  # pusher centre to block centre

        # block: clear of a fixed obstacle and an explicit pusher, far from an explicit goal
        # (one draw when nothing is fixed, so the nominal stream of draws is unchanged)
        if "block" in place:
            rng.uniform(-cfg.block_range, cfg.block_range, 2)  # keeps the later draws aligned
            block = place["block"][:2]
        else:

            def block_rejected(b: np.ndarray) -> bool:
                near_ob = fixed_ob is not None and np.abs(b - fixed_ob).max() <= (
                    OBSTACLE_HALF + CORNER + MARGIN
                )
                return near_ob or (
                    fixed_pusher is not None and np.hypot(*(fixed_pusher - b)) <= clear
                )

            block = _sample_far(
                rng,
                cfg.block_range,
                block_rejected,
                lambda b: math.inf if fixed_goal is None else float(np.hypot(*(fixed_goal - b))),
                cfg.min_goal_distance,
            )
            if block is None:
                raise ValueError(
                    f"no free block start found in |x|, |y| <= block_range={cfg.block_range} "
                    f"clear of obstacle={shifts['obstacle']!r} and pusher={opts.get('pusher')!r}"
                )
        yaw = rng.uniform(-np.pi, np.pi)
        yaw_given = "block" in place and len(place["block"]) == 3
        if yaw_given:
            yaw = float(place["block"][2])

        # goal: min_goal_distance from the block where it ends up, after goal_offset (before
        # it, 4% of goal_offset=(0.1, 0.1) episodes started with the block inside the goal
        # region: free successes under a failure shift); never on the block, and a block must
        # fit on the goal beside a fixed obstacle. No offset, nothing fixed: the same draws as
        # before (at the default min_goal_distance >= goal_radius). A redrawn goal takes more
        # draws from the episode's generator, so that episode's pusher start differs too.
        if fixed_goal is not None:
            goal = fixed_goal
        else:

            def moved(g: np.ndarray) -> np.ndarray:
                return np.clip(g + offset, -REACH, REACH)

            def goal_rejected(g: np.ndarray) -> bool:
                gf = moved(g)
                on_block = np.hypot(*(gf - block)) < cfg.goal_radius
                return bool(on_block) or (
                    fixed_ob is not None and np.abs(gf - fixed_ob).max() < OBSTACLE_HALF + HALF
                )

            best = _sample_far(
                rng,
                cfg.goal_range,
                goal_rejected,
                lambda g: float(np.hypot(*(moved(g) - block))),
                cfg.min_goal_distance,
            )
            if best is None:
                raise ValueError(
                    f"no free goal found in |x|, |y| <= goal_range={cfg.goal_range} (moved by "
                    f"goal_offset={shifts['goal_offset']!r}) outside the block and clear of "
                    f"obstacle={shifts['obstacle']!r}"
                )
            goal = np.clip(best + offset, -REACH, REACH)
        self.goal = goal
        self._place_obstacle(self._obstacle_position(shifts["obstacle"], block, goal))

        if fixed_pusher is not None:
            pusher = fixed_pusher
        else:
            pusher = None
            for _ in range(200):
                p = rng.uniform(-cfg.pusher_range, cfg.pusher_range, 2)
                ok = np.hypot(*(p - block)) > clear
                if ok and self.obstacle_xy is not None:
                    ok = np.abs(p - self.obstacle_xy).max() > OBSTACLE_HALF + PUSHER_RADIUS + MARGIN
                if ok:
                    pusher = p
                    break
            if pusher is None:
                raise ValueError(
                    "no free pusher start found: the block or obstacle covers the field"
                )
        self._check_layout(opts, shifts, pusher, block, yaw, goal)

        qpos = self.data.qpos
        qpos[0:2] = pusher
        qpos[2:5] = (block[0], block[1], HALF)
        qpos[5:9] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        self.model.site_pos[self._goal_site, :2] = goal
        mj.mj_forward(self.model, self.data)
        self._prev_dist = float(np.hypot(*(goal - block)))
        return self._obs(), {"pose": self._pose(), "distance": self._prev_dist}

    def _check_layout(
        self,
        opts: dict[str, Any],
        shifts: dict[str, Any],
        pusher: np.ndarray,
        block: np.ndarray,
        yaw: float,
        goal: np.ndarray,
    ) -> None:
        """Reject a start where the pusher, block and obstacle overlap, the block starts in the
        goal region or a fixed obstacle covers the goal; the error names the options."""

        def name(*keys: str) -> str:
            given = [f"{k}={opts[k]!r}" for k in keys if k in opts]
            return "reset option(s) " + ", ".join(given) if given else "the sampled start"

        ob = self.obstacle_xy
        if _point_to_block(pusher, block, yaw) <= PUSHER_RADIUS:
            raise ValueError(
                f"{name('pusher', 'block')}: the pusher at {_xy(pusher)} overlaps "
                f"the block at {_xy(block)}, yaw {yaw:.3f}; allowed: the pusher's "
                f"centre more than {PUSHER_RADIUS} m from the block's footprint"
            )
        if ob is not None:
            if np.abs(pusher - ob).max() <= OBSTACLE_HALF + PUSHER_RADIUS:
                raise ValueError(
                    f"{name('pusher', 'obstacle')}: the pusher at {_xy(pusher)} "
                    f"overlaps the obstacle at {_xy(ob)}; allowed: |dx| or |dy| "
                    f"> {OBSTACLE_HALF + PUSHER_RADIUS} m from it"
                )
            if _rect_gap(block, yaw, HALF, ob, 0.0, OBSTACLE_HALF) <= 0:
                raise ValueError(
                    f"{name('block', 'obstacle', 'goal')}: the block at "
                    f"{_xy(block)}, yaw {yaw:.3f} overlaps the obstacle at "
                    f"{_xy(ob)}; allowed: the two footprints apart"
                )
            fixed = not isinstance(shifts["obstacle"], str)
            if fixed and np.abs(goal - ob).max() < OBSTACLE_HALF + HALF:
                raise ValueError(
                    f"{name('goal', 'goal_offset', 'obstacle')}: the goal at "
                    f"{_xy(goal)} is under the obstacle at "
                    f"{_xy(ob)}; allowed: |dx| or |dy| >= "
                    f"{OBSTACLE_HALF + HALF} m from it (room for the block)"
                )
        d = float(np.hypot(*(goal - block)))
        # placed starts only: a sampled goal is drawn off the block (after any offset)
        if ("block" in opts or "goal" in opts) and d < self.config.goal_radius:
            raise ValueError(
                f"{name('block', 'goal', 'goal_offset')}: the block at "
                f"{_xy(block)} starts {d:.4f} m from the goal at "
                f"{_xy(goal)}, inside the goal region; allowed: at least "
                f"goal_radius={self.config.goal_radius} m apart"
            )

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

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the mujoco module and the renderer (a GL context; made again on
        the next render): a pickled env goes on bit for bit (sample-identical resumes)."""
        state = self.__dict__.copy()
        del state["mujoco"]
        state["_renderer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.mujoco = require("mujoco", ENV_ID)
