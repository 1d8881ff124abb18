"""The batched AGV warehouse: one physics core stepping N vehicles at once in numpy.

Every face of the environment (the single Gymnasium env, the Gymnasium vector env, the
Stable-Baselines3 VecEnv) is a thin wrapper around :class:`AGVCore`. The core has no
autoreset and no time limit of its own semantics beyond a step counter: each face decides
what happens at an episode end, so each gets exactly its own reset semantics.

Units are SI: metres, seconds, radians. Vehicle i draws all of its randomness from its own
generator ``rngs[i]``, so vehicle i of a core seeded with ``s`` behaves exactly like a
single env seeded with ``s + i``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from rndx.envs.agv.geometry import (
    cast_rays,
    clip_actions,
    collisions,
    features,
    goal_events,
    integrate,
    point_clearance,
)
from rndx.envs.agv.world import World, get_world
from rndx.utils.checks import finite_number, whole_number

TASKS = ("reach", "pick_drop")
AGV_LANE_OFFSET = 0.5  # metres from the aisle's centre line to an obstacle AGV's path
START_MARGIN = 0.15  # metres of free space around a sampled start or goal beyond the radius
REWARDS = ("sparse", "dense")
# everything reset(options=...) accepts (AGVCore.place)
PLACE_OPTIONS = ("start", "goal", "goal_path", "obstacles", "drop")
COLLISIONS = ("terminate", "stop")
# AGVConfig's float fields by allowed range; lidar_dropout is in [0, 1)
POSITIVE = (
    "dt", "v_max", "w_max", "a_max", "alpha_max", "radius", "goal_radius", "lidar_range",
    "agv_radius", "pedestrian_radius", "goal_travel",
)  # fmt: skip
# 0 is meaningful for these: no reward term, any goal distance, no noise, parked AGVs,
# motors that deliver nothing (a failure shift), a fixed goal
NON_NEGATIVE = (
    "goal_reward", "pick_reward", "collision_penalty", "progress_coef", "min_goal_distance",
    "lidar_noise", "agv_speed", "actuator_gain", "goal_speed",
)  # fmt: skip
# integer fields -> their minimum
COUNTS = {"n_beams": 1, "action_repeat": 1, "layout_seed": 0, "n_agvs": 0, "n_pedestrians": 0}


@dataclass
class AGVConfig:
    """Everything that defines an AGV warehouse task. See :class:`AGVWarehouseEnv` for docs."""

    layout: str = "small"  # a shipped layout's name, "procedural", or a .txt file's path
    layout_seed: int = 0
    task: str = "reach"
    reward: str = "sparse"
    goal_reward: float = 1.0
    pick_reward: float = 0.5
    collision_penalty: float = 0.1
    progress_coef: float = 0.1
    dt: float = 0.1
    v_max: float = 1.5
    w_max: float = 1.5
    a_max: float = 1.5
    alpha_max: float = 4.0
    radius: float = 0.3
    goal_radius: float = 0.5
    min_goal_distance: float = 3.0
    n_beams: int = 32
    lidar_range: float = 8.0
    lidar_noise: float = 0.0
    lidar_dropout: float = 0.0
    n_agvs: int = 0
    n_pedestrians: int = 0
    agv_speed: float = 1.0
    agv_radius: float = 0.4
    pedestrian_speed: tuple[float, float] = (0.5, 1.3)
    pedestrian_radius: float = 0.25
    actuator_gain: float = 1.0
    goal_speed: float = 0.0  # m/s; > 0: the goal ping-pongs along an aisle (task 'reach')
    goal_travel: float = 6.0  # metres of aisle the moving goal's path covers
    # control ticks of dt per step: the command is held that long (frame skip); the step
    # ends at the first tick with a collision or success, rewards summed over its ticks
    action_repeat: int = 1
    # append the vehicle's own pose (x / width, y / height, cos, sin of the heading) to the
    # observation: a localised AGV; off by default (the pose is always in info["pose"])
    observe_pose: bool = False
    # "terminate": a collision ends the episode (default); "stop": the vehicle stays at its
    # pose before the colliding tick with zero velocity, takes the penalty, and drives on
    collision: str = "terminate"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}; allowed: {list(TASKS)}")
        if self.collision not in COLLISIONS:
            raise ValueError(f"collision={self.collision!r}; allowed: {list(COLLISIONS)}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward={self.reward!r}; allowed: {list(REWARDS)}")
        for name in POSITIVE:
            finite_number(name, getattr(self, name), 0.0, open_min=True)
        for name in NON_NEGATIVE:
            finite_number(name, getattr(self, name), 0.0)
        finite_number("lidar_dropout", self.lidar_dropout, 0.0, 1.0, open_max=True)
        for name, minimum in COUNTS.items():
            setattr(self, name, whole_number(name, getattr(self, name), minimum))
        self.pedestrian_speed = tuple(self.pedestrian_speed)
        speeds = self.pedestrian_speed
        valid = len(speeds) == 2 and all(
            isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s)
            for s in speeds
        )
        if not (valid and 0 <= speeds[0] <= speeds[1]):
            raise ValueError(
                f"pedestrian_speed={self.pedestrian_speed!r} must be (low, high) m/s "
                "with 0 <= low <= high"
            )
        if self.goal_speed > 0 and self.task != "reach":
            raise ValueError(f"goal_speed={self.goal_speed!r} > 0 needs task='reach'")
        if not isinstance(self.observe_pose, (bool, np.bool_)):
            raise ValueError(f"observe_pose={self.observe_pose!r} must be true or false")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> AGVConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(kwargs) - known
        if unknown:
            raise TypeError(f"unknown AGV env option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(xy: np.ndarray) -> np.ndarray:
    """Row norms of (n, 2)."""
    return np.sqrt(xy[:, 0] * xy[:, 0] + xy[:, 1] * xy[:, 1])


# action dtypes validate_actions hands to its compiled fast path (native byte order only)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def validate_actions(actions: Any, n: int, single: bool = False) -> np.ndarray:
    """Actions as a float (n, 2) array; wrong shape or non-finite values raise ValueError.

    ``single``: the action of a single (non-vector) env, which must have shape (2,) (it is
    returned as (1, 2)); otherwise the shape is (n, 2), or (2,) when n is 1.
    Finite values outside [-1, 1] are clipped (documented behaviour of the action space)."""
    if single:
        shapes: tuple[tuple[int, ...], ...] = ((2,),)
    else:
        shapes = ((1, 2), (2,)) if n == 1 else ((n, 2),)
    if (
        n == 1
        and isinstance(actions, np.ndarray)
        and actions.dtype.kind == "f"
        and actions.shape in shapes
    ):
        # the single env's hot path: two Python floats are cheaper than array reductions;
        # a chained comparison is False for NaN, so only in-range values take the shortcut
        v, w = actions.ravel().tolist()
        if -1.0 <= v <= 1.0 and -1.0 <= w <= 1.0:
            return np.array([[v, w]])
        if math.isfinite(v) and math.isfinite(w):
            return np.array([[min(max(v, -1.0), 1.0), min(max(w, -1.0), 1.0)]])
    if isinstance(actions, np.ndarray) and actions.dtype in _FLOATS and actions.shape in shapes:
        # the vector step's hot path: one compiled pass converts, checks and clips (NaN or
        # inf falls through to the checks below, which name them)
        out = np.empty((n, 2))
        if clip_actions(actions.reshape(n, 2), out):
            return out
    expected = shapes[0]
    try:
        if np.iscomplexobj(actions):  # numpy would drop the imaginary part with a warning
            raise TypeError("complex")
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"action {actions!r} is not numeric; expected floats of shape {expected} in [-1, 1]"
        ) from None
    if a.shape not in shapes:
        raise ValueError(f"action has shape {a.shape}; expected {expected}")
    a = a.reshape(n, 2)
    if not np.isfinite(a.sum()):  # one reduction; NaN/inf anywhere makes the sum non-finite
        bad = a[~np.isfinite(a).all(axis=1)]
        raise ValueError(f"action contains NaN or inf: {bad.tolist()}; allowed: finite in [-1, 1]")
    return np.minimum(np.maximum(a, -1.0), 1.0)  # np.clip is several times slower here


def _show(value: Any) -> str:
    """An option value as written: an array as its nested list."""
    return repr(value.tolist() if isinstance(value, np.ndarray) else value)


def _option_array(name: str, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Reset option ``name`` as a float array of ``shape``; ValueError naming the option, the
    value and ``what`` is allowed unless it holds that many finite (non-bool) numbers."""
    try:
        a = np.asarray(value)
    except ValueError:  # ragged nesting
        a = np.asarray(None)
    if a.dtype.kind not in "iuf" or a.shape != shape or not np.isfinite(a).all():
        got = f" (got shape {a.shape})" if a.dtype.kind in "iuf" and a.shape != shape else ""
        raise ValueError(f"{name}={_show(value)} must be {what}{got}")
    return a.astype(np.float64)


class AGVCore:
    """N differential-drive vehicles in N independent copies of one warehouse."""

    def __init__(self, num_envs: int, config: AGVConfig | None = None, track_env: int = -1):
        self.n = int(num_envs)
        if self.n < 1:
            raise ValueError(f"num_envs={num_envs!r} must be >= 1")
        self.cfg = config or AGVConfig()
        cfg = self.cfg
        self.world: World = get_world(cfg.layout, cfg.lidar_range, cfg.layout_seed)
        lay = self.world.layout
        self.width, self.height = lay.size
        self.diag = float(np.hypot(self.width, self.height))
        self.start_cells = lay.cells("S")
        self.goal_cells = lay.cells("G") if np.any(lay.grid == "G") else lay.cells(".G")
        self.pick_cells, self.drop_cells = lay.cells("P"), lay.cells("D")
        if cfg.task == "pick_drop" and (len(self.pick_cells) == 0 or len(self.drop_cells) == 0):
            raise ValueError(f"task='pick_drop' needs 'P' and 'D' cells in layout {lay.name!r}")
        if (cfg.n_agvs or cfg.n_pedestrians or cfg.goal_speed) and len(self.world.lanes) == 0:
            raise ValueError(f"layout {lay.name!r} has no aisle long enough for moving obstacles")
        self.beam_offsets = np.linspace(-np.pi, np.pi, cfg.n_beams, endpoint=False)
        self.obs_dim = (
            cfg.n_beams + 5 + (1 if cfg.task == "pick_drop" else 0) + (4 if cfg.observe_pose else 0)
        )
        n, m = self.n, cfg.n_agvs + cfg.n_pedestrians
        self.m = m
        self.rngs = [np.random.default_rng() for _ in range(n)]
        self.pos = np.zeros((n, 2))
        self.theta = np.zeros(n)
        self.v = np.zeros(n)
        self.w = np.zeros(n)
        self.goal = np.zeros((n, 2))
        self.final_goal = np.zeros((n, 2))
        self.phase = np.zeros(n, dtype=np.int64)  # pick_drop: 0 going to pick, 1 carrying
        self.steps = np.zeros(n, dtype=np.int64)
        self.prev_dist = np.zeros(n)
        # moving obstacles: ping-pong along segment p0-p1 at speed, arc position s in [0, 2L)
        self.obs_p0 = np.zeros((n, m, 2))
        self.obs_p1 = np.zeros((n, m, 2))
        self.obs_len = np.ones((n, m))
        self.obs_s = np.zeros((n, m))
        self.obs_speed = np.zeros((n, m))
        self.obs_radius = np.r_[
            np.full(cfg.n_agvs, cfg.agv_radius), np.full(cfg.n_pedestrians, cfg.pedestrian_radius)
        ]
        self.obs_pos = np.zeros((n, m, 2))
        # moving goal (goal_speed > 0): ping-pong along goal_p0-goal_p1, arc position in [0, 2L)
        self.goal_p0 = np.zeros((n, 2))
        self.goal_p1 = np.zeros((n, 2))
        self.goal_len = np.ones(n)
        self.goal_s = np.zeros(n)
        self.ranges = np.zeros((n, cfg.n_beams))
        self.pose = np.zeros((n, 4), dtype=np.float32)
        self.track_env = track_env  # env whose trail is kept for rendering (-1: none)
        self.trail: list[np.ndarray] = []

    # ------------------------------------------------------------------ seeding and reset
    def seed(self, seeds: list[int | None] | None) -> None:
        """One generator per vehicle; ``seeds[i] = None`` draws fresh entropy."""
        from gymnasium.utils import seeding

        if seeds is None:
            seeds = [None] * self.n
        self.rngs = [seeding.np_random(s)[0] for s in seeds]

    def reset_envs(self, idx: np.ndarray) -> None:
        """Reset the vehicles ``idx`` (int array); each samples from its own generator."""
        cfg = self.cfg
        # Python ints and floats, vehicle by vehicle: a step resets one or two vehicles, for
        # which numpy's per-call costs (fancy indexing, 2-element arrays) dominate
        ids = np.asarray(idx, dtype=np.int64).tolist()
        for i in ids:
            rng = self.rngs[i]
            x, y = self._sample_point(rng, self.start_cells)
            self.pos[i] = x, y
            self.theta[i] = rng.uniform(-np.pi, np.pi)
            if cfg.task == "pick_drop":
                self.goal[i] = self._sample_point(rng, self.pick_cells)
                self.final_goal[i] = self._sample_point(rng, self.drop_cells)
            else:
                best, best_d = None, -1.0
                for _ in range(100):
                    g = self._sample_point(rng, self.goal_cells)
                    d = float(np.hypot(g[0] - x, g[1] - y))
                    if d > best_d:
                        best, best_d = g, d
                    if d >= cfg.min_goal_distance:
                        break
                if best_d < cfg.min_goal_distance:
                    raise ValueError(
                        f"layout {self.world.layout.name!r}: no goal cell is at least "
                        f"min_goal_distance={cfg.min_goal_distance} m from the start; the "
                        f"farthest found was {best_d:.2f} m"
                    )
                self.goal[i] = self.final_goal[i] = best
                if cfg.goal_speed > 0:
                    self._goal_path(i, self._lane_path(self.goal[i], rng))
            self._reset_obstacles(i, rng)
            self.v[i] = self.w[i] = 0.0
            self.phase[i] = self.steps[i] = 0
            gx, gy = (self.goal[i] - self.pos[i]).tolist()
            self.prev_dist[i] = math.sqrt(gx * gx + gy * gy)  # the same float64 ops as _norm
        if self.track_env >= 0 and self.track_env in ids:
            self.trail = [self.pos[self.track_env].copy()]

    def check_options(self, options: Any) -> dict[str, np.ndarray]:
        """The reset options as float arrays, or ValueError naming the option, the value and
        what is allowed: an unknown key, a wrong shape, a non-finite number, a position off
        the floor or inside a wall or shelf, a start without the vehicle's radius clear, or a
        goal (or a point of a goal path) farther than ``goal_radius`` from anywhere the
        vehicle fits."""
        if not isinstance(options, dict):
            raise ValueError(
                f"options={options!r} must be a dict with keys among {list(PLACE_OPTIONS)}"
            )
        unknown = set(options) - set(PLACE_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; allowed: {sorted(PLACE_OPTIONS)}"
            )
        cfg = self.cfg
        # a goal this far from walls and shelves is within goal_radius of a point where the
        # vehicle fits (along a straight wall)
        goal_gap = max(cfg.radius - cfg.goal_radius, 0.0)
        goal_rule = f", at least {goal_gap:g} m (radius - goal_radius) from walls and shelves"
        goal_rule = goal_rule if goal_gap > 0 else ""
        out = {}
        for name, value in options.items():
            if name == "start":
                a = _option_array(name, value, (3,), "(x, y, heading): 3 finite numbers")
                rule = f" with the vehicle's {cfg.radius:g} m radius clear"
                self._check_free(name, value, a[None, :2], cfg.radius, rule)
            elif name in ("goal", "drop"):
                if name == "drop" and cfg.task != "pick_drop":
                    raise ValueError(
                        f"drop={_show(value)}: the drop station is an option of "
                        f"task='pick_drop' only, this env's task is {cfg.task!r}"
                    )
                a = _option_array(name, value, (2,), "(x, y): 2 finite numbers")
                self._check_free(name, value, a[None], goal_gap, goal_rule)
            elif name == "goal_path":
                what = "((x0, y0), (x1, y1)): 2 x 2 finite numbers"
                a = _option_array(name, value, (2, 2), what)
                steps = max(int(np.hypot(*(a[1] - a[0])) / 0.05), 2)  # every 5 cm
                path = a[0] + np.linspace(0.0, 1.0, steps)[:, None] * (a[1] - a[0])
                self._check_free(name, value, path, goal_gap, goal_rule)
            else:  # obstacles
                what = f"{self.m} (x, y), one per AGV and pedestrian: ({self.m}, 2) finite numbers"
                a = _option_array(name, value, (self.m, 2), what)
                self._check_free(name, value, a, 0.0, "")
            out[name] = a
        return out

    def _check_free(self, name: str, value: Any, points: np.ndarray, gap: float, rule: str) -> None:
        """ValueError unless every point (k, 2) is on the floor, outside every wall and shelf
        and at least ``gap`` metres from them (``rule`` says so in the message)."""
        x, y = points[:, 0], points[:, 1]
        floor = f"the {self.width:g} x {self.height:g} m floor"
        off = (x < 0.0) | (x > self.width) | (y < 0.0) | (y > self.height)
        clear = np.where(off, np.inf, self.world.clearance(points))
        for bad, problem in (
            (off, f"off {floor}"),
            (clear <= 0.0, "inside a wall or shelf"),
            (clear < gap, "{:.2f} m from a wall or shelf"),
        ):
            if bad.any():
                k = int(np.argmax(bad))
                where = (
                    " is"
                    if len(points) == 1
                    else f" has the point ({points[k, 0]:.2f}, {points[k, 1]:.2f})"
                )
                raise ValueError(
                    f"{name}={_show(value)}{where} {problem.format(clear[k])}; "
                    f"allowed: a free (x, y) on {floor}{rule}"
                )

    def place(self, i: int, options: dict[str, Any]) -> None:
        """Override vehicle i's sampled reset state: ``start`` (x, y, heading), ``goal`` (x, y)
        (for ``pick_drop`` the pick station), ``drop`` (x, y) (``pick_drop`` only: the drop
        station), ``obstacles`` ((m, 2) fixed obstacle positions, frozen in place),
        ``goal_path`` ((2, 2) end points: the goal starts at the first and ping-pongs at
        ``goal_speed``).
        A placed ``goal`` of a moving-goal env gets a new aisle path through it. Used by
        tests, experts and distribution shifts. Every option is checked first
        (:meth:`check_options`)."""
        self.place_checked(i, self.check_options(options))

    def place_checked(self, i: int, opts: dict[str, np.ndarray]) -> None:
        """:meth:`place` with options :meth:`check_options` has already returned (a batch of
        envs given the same options checks them once)."""
        if "start" in opts:
            x, y, th = opts["start"]
            self.pos[i], self.theta[i] = (x, y), th
        if "goal" in opts:  # pick_drop: the goal is the pick station; the drop stays
            self.goal[i] = opts["goal"]
            if self.cfg.task != "pick_drop":
                self.final_goal[i] = opts["goal"]
            if self.cfg.goal_speed > 0 and "goal_path" not in opts:
                self._goal_path(i, self._lane_path(self.goal[i], self.rngs[i]))
        if "goal_path" in opts:
            self._goal_path(i, opts["goal_path"])
        if "drop" in opts:
            self.final_goal[i] = opts["drop"]
        if "obstacles" in opts:
            xy = opts["obstacles"]
            self.obs_p0[i] = self.obs_p1[i] = xy
            self.obs_speed[i] = 0.0
            self.obs_pos[i] = xy
        self.prev_dist[i] = np.hypot(*(self.goal[i] - self.pos[i]))
        if self.track_env == i:
            self.trail = [self.pos[i].copy()]

    def _sample_point(self, rng: np.random.Generator, cells: np.ndarray) -> tuple[float, float]:
        """A uniform point (x, y) in a random cell of ``cells`` keeping ``start_clearance``
        from walls and shelves (so a start is never a collision one steering step away);
        else the cell centre."""
        w = self.world
        cell = w.layout.cell
        cx, cy = cells[rng.integers(len(cells))].tolist()
        ux, uy = rng.uniform(-0.5, 0.5, size=2).tolist()
        x, y = cx + ux * cell, cy + uy * cell
        if point_clearance(x, y, w.boxes, w.near, cell) < self.cfg.radius + START_MARGIN:
            return cx, cy
        return x, y

    def _lane_path(self, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """End points (2, 2) of a moving goal's path: ``goal_travel`` metres of the aisle lane
        nearest to ``goal`` among those at least that long (a random stretch that contains
        the projection of ``goal``; if no lane is long enough, the nearest lane whole),
        starting at the end nearer to ``goal``."""
        lanes = self.world.lanes
        long_enough = _norm(lanes[:, 2:] - lanes[:, :2]) >= self.cfg.goal_travel
        if long_enough.any():
            lanes = lanes[long_enough]
        a, b = lanes[:, :2], lanes[:, 2:]
        ab = b - a
        length = np.maximum(_norm(ab), 1e-9)
        t = np.clip(np.einsum("ij,ij->i", goal - a, ab) / length**2, 0.0, 1.0)
        k = int(np.argmin(_norm(a + t[:, None] * ab - goal)))
        travel = min(self.cfg.goal_travel, length[k])
        # the stretch [u, u + travel] (metres along the lane) contains the projection
        here = t[k] * length[k]
        lo, hi = max(0.0, here - travel), min(length[k] - travel, here)
        u = rng.uniform(lo, hi) if hi > lo else lo
        p = a[k] + np.outer([u, u + travel], ab[k] / length[k])
        return p if np.hypot(*(p[0] - goal)) <= np.hypot(*(p[1] - goal)) else p[::-1]

    def _goal_path(self, i: int, path: np.ndarray) -> None:
        self.goal_p0[i], self.goal_p1[i] = path[0], path[1]
        self.goal_len[i] = max(np.hypot(*(path[1] - path[0])), 1e-6)
        self.goal_s[i] = 0.0
        self.goal[i] = self.final_goal[i] = path[0]

    def _reset_obstacles(self, i: int, rng: np.random.Generator) -> None:
        cfg, lanes = self.cfg, self.world.lanes
        for j in range(self.m):
            lane = lanes[rng.integers(len(lanes))]
            a, b = lane[:2], lane[2:]
            if j < cfg.n_agvs:
                # AGVs keep to one side of the 2 m aisle (like real warehouse traffic), so the
                # other side leaves room for the vehicle to pass: 2 - 2 * 0.5 m >= 2 * radius
                side = np.array([-(b - a)[1], (b - a)[0]]) / max(np.hypot(*(b - a)), 1e-9)
                shift = side * (AGV_LANE_OFFSET * rng.choice([-1.0, 1.0]))
                a, b = a + shift, b + shift
            if j >= cfg.n_agvs:  # pedestrians walk a random stretch of an aisle
                t0, t1 = np.sort(rng.uniform(0.0, 1.0, size=2))
                a, b = a + t0 * (b - a), a + max(t1, t0 + 0.2) * (b - a)
                speed = rng.uniform(*cfg.pedestrian_speed)
            else:
                speed = cfg.agv_speed
            self.obs_p0[i, j], self.obs_p1[i, j] = a, b
            self.obs_len[i, j] = max(np.hypot(*(b - a)), 1e-6)
            self.obs_speed[i, j] = speed
            # start away from the vehicle so no episode begins in a collision: the first
            # draw > 2.5 m away, else (a short stretch next to the start) the farthest draw
            best_s, best_d = 0.0, -1.0
            for _ in range(20):
                self.obs_s[i, j] = rng.uniform(0.0, 2.0 * self.obs_len[i, j])
                d = np.hypot(*(self._obstacle_xy(i, j) - self.pos[i]))
                if d > 2.5:
                    break
                if d > best_d:
                    best_s, best_d = self.obs_s[i, j], d
            else:
                self.obs_s[i, j] = best_s
        if self.m:
            self.obs_pos[i] = self._obstacle_positions()[i]

    def _obstacle_xy(self, i: int, j: int) -> np.ndarray:
        s, length = self.obs_s[i, j], self.obs_len[i, j]
        f = s / length if s <= length else 2.0 - s / length
        return self.obs_p0[i, j] + f * (self.obs_p1[i, j] - self.obs_p0[i, j])

    def _obstacle_positions(self) -> np.ndarray:
        f = self.obs_s / self.obs_len
        f = np.where(f <= 1.0, f, 2.0 - f)
        return self.obs_p0 + f[..., None] * (self.obs_p1 - self.obs_p0)

    # ------------------------------------------------------------------ stepping
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Advance every vehicle by one control step with validated actions (n, 2) in [-1, 1]:
        ``action_repeat`` ticks of ``dt``, fewer for a vehicle whose step ends in a collision
        or success (it stays where that tick left it; rewards and flags are summed / OR-ed).

        Returns (reward, events) where events holds boolean arrays ``success``,
        ``collision``, ``picked`` and the reward terms. Observations come from :meth:`observe`.
        """
        total, acc = self._tick(actions, None)
        self.steps += 1
        if self.cfg.action_repeat == 1:
            return total, acc
        live = ~(acc["success"] | acc["collision"])  # a colliding tick ends the step either way
        for _ in range(self.cfg.action_repeat - 1):
            if not live.any():
                break
            reward, events = self._tick(actions, np.flatnonzero(~live))
            total = total + np.where(live, reward, 0.0)
            for key, value in events.items():
                if value.dtype == bool:
                    acc[key] = acc[key] | (value & live)
                else:
                    acc[key] = acc[key] + np.where(live, value, 0.0)
            live &= ~(acc["success"] | acc["collision"])
        return total, acc

    def _tick(
        self, actions: np.ndarray, frozen: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One tick of dt. Vehicles in ``frozen`` (their step already ended this step) keep
        their state, so the observation after the step is the one of the ending tick."""
        cfg = self.cfg
        held = None
        if frozen is not None and len(frozen):
            held = [a[frozen].copy() for a in (self.pos, self.theta, self.v, self.w)]
        before = None
        if cfg.collision == "stop":
            before = self.pos.copy(), self.theta.copy()
        integrate(
            self.pos,
            self.theta,
            self.v,
            self.w,
            actions,
            cfg.v_max,
            cfg.w_max,
            cfg.actuator_gain,
            cfg.a_max * cfg.dt,
            cfg.alpha_max * cfg.dt,
            cfg.dt,
        )
        if held is not None:
            for a, h in zip((self.pos, self.theta, self.v, self.w), held):
                a[frozen] = h
        self.advance_obstacles()
        collision = self._collides()
        if before is not None and collision.any():
            hit = np.flatnonzero(collision)
            self.pos[hit], self.theta[hit] = before[0][hit], before[1][hit]
            self.v[hit] = 0.0
            self.w[hit] = 0.0
        return self.goal_step(collision)

    def terminal(self, events: dict[str, np.ndarray]) -> np.ndarray:
        """Which vehicles' episodes end after a step with these events: success, and a
        collision unless ``collision='stop'``."""
        if self.cfg.collision == "stop":
            return events["success"].copy()
        return events["success"] | events["collision"]

    def advance_obstacles(self) -> None:
        """Move the AGVs, pedestrians and a moving goal one control step along their
        ping-pong routes."""
        cfg = self.cfg
        if self.m:
            self.obs_s = np.mod(self.obs_s + self.obs_speed * cfg.dt, 2.0 * self.obs_len)
            self.obs_pos = self._obstacle_positions()
        if cfg.goal_speed > 0:
            self.goal_s = np.mod(self.goal_s + cfg.goal_speed * cfg.dt, 2.0 * self.goal_len)
            f = self.goal_s / self.goal_len
            f = np.where(f <= 1.0, f, 2.0 - f)
            self.goal[:] = self.goal_p0 + f[:, None] * (self.goal_p1 - self.goal_p0)
            self.final_goal[:] = self.goal

    def goal_step(self, collision: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Goal bookkeeping and reward terms after a move, given each vehicle's collision flag
        (from the 2D geometry here, from contact physics in the Bullet env)."""
        cfg = self.cfg
        success, picked, terms = goal_events(
            self.pos,
            self.goal,
            self.final_goal,
            self.phase,
            self.prev_dist,
            collision,
            cfg.goal_radius,
            cfg.task == "pick_drop",
            cfg.goal_reward,
            cfg.pick_reward,
            cfg.collision_penalty,
            cfg.progress_coef if cfg.reward == "dense" else 0.0,
        )
        events = {
            "success": success,
            "collision": collision,
            "picked": picked,
            "reward_goal": terms[0],
            "reward_collision": terms[1],
            "reward_progress": terms[2],
        }
        if self.track_env >= 0:
            self.trail.append(self.pos[self.track_env].copy())
        return terms[3], events

    def _collides(self) -> np.ndarray:
        w = self.world
        return collisions(
            self.pos,
            self.cfg.radius,
            w.boxes,
            w.near,
            w.layout.cell,
            self.width,
            self.height,
            self.obs_pos,
            self.obs_radius,
        )

    # ------------------------------------------------------------------ sensing
    def lidar(self, idx: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Exact ranges (n, beams) in metres to walls, shelves and moving obstacles of the
        vehicles ``idx`` (all when None): geometry.cast_rays on the world's candidate boxes.
        ``out`` (n, beams) float64 receives them (a new array otherwise)."""
        world = self.world
        if idx is None:
            pos, theta, obs_pos = self.pos, self.theta, self.obs_pos
        else:
            pos, theta, obs_pos = self.pos[idx], self.theta[idx], self.obs_pos[idx]
        if out is None:
            out = np.empty((pos.shape[0], self.cfg.n_beams))
        cast_rays(
            out,
            pos,
            theta,
            self.beam_offsets,
            world.boxes,
            world.candidates,
            world.layout.cell,
            obs_pos,
            self.obs_radius,
            self.cfg.lidar_range,
        )
        return out

    def observe(
        self, idx: np.ndarray | None = None, ranges: np.ndarray | None = None
    ) -> np.ndarray:
        """Observation (n, obs_dim) float32: lidar / range, goal distance / diagonal, goal
        bearing (cos, sin) in the vehicle frame, v / v_max, w / w_max [, carrying flag]
        [, with ``observe_pose``: x / width, y / height, cos and sin of the heading].

        ``idx`` (int array) observes only those vehicles. Sensor noise is drawn from each
        observed vehicle's own generator. ``ranges`` (n, beams) in metres replaces the 2D ray
        cast (the Bullet env passes its own lidar)."""
        cfg = self.cfg
        noisy = cfg.lidar_noise > 0 or cfg.lidar_dropout > 0
        state = (self.pos, self.theta, self.goal, self.v, self.w, self.phase)
        if idx is None and ranges is None and not noisy:
            # every vehicle, noiseless 2D lidar (the training hot path): the kernels write
            # straight into the core's ranges and poses
            ranges = self.lidar(out=self.ranges)
            pose = self.pose
        else:
            sel = slice(None) if idx is None else np.asarray(idx, dtype=np.int64)
            ranges = self.lidar(idx) if ranges is None else np.array(ranges, dtype=np.float64)
            if noisy:
                for k, i in enumerate(range(self.n) if idx is None else sel):
                    rng = self.rngs[i]
                    if cfg.lidar_noise > 0:
                        ranges[k] += rng.normal(0.0, cfg.lidar_noise, cfg.n_beams)
                    if cfg.lidar_dropout > 0:
                        ranges[k][rng.random(cfg.n_beams) < cfg.lidar_dropout] = cfg.lidar_range
                ranges = np.clip(ranges, 0.0, cfg.lidar_range)
            self.ranges[sel] = ranges
            if idx is not None:
                state = tuple(a[sel] for a in state)
            pose = np.empty((ranges.shape[0], 4), dtype=np.float32)
        obs = np.empty((ranges.shape[0], self.obs_dim), dtype=np.float32)
        features(
            obs,
            pose,
            ranges,
            *state,
            cfg.lidar_range,
            self.diag,
            cfg.v_max,
            cfg.w_max,
            cfg.task == "pick_drop",
        )
        if pose is not self.pose:
            self.pose[sel] = pose
        if cfg.observe_pose:
            xy = np.clip(pose[:, :2] / np.array([self.width, self.height], np.float32), 0.0, 1.0)
            obs[:, -4:-2] = xy
            obs[:, -2:] = pose[:, 2:]
        return obs

    def poses(self) -> np.ndarray:
        """(n, 4) float32: x, y, cos(heading), sin(heading) as of the last observation."""
        return self.pose

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low = np.zeros(self.obs_dim, dtype=np.float32)
        high = np.ones(self.obs_dim, dtype=np.float32)
        nb = self.cfg.n_beams
        low[nb + 1 : nb + 5] = -1.0  # cos, sin, v, w
        if self.cfg.observe_pose:
            low[-2:] = -1.0  # the pose's cos, sin (x, y / floor size in [0, 1] before them)
        return low, high
