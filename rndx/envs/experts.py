"""A scripted expert for the AGV warehouse: grid planner + pure-pursuit path tracker.

The expert reads the privileged state of an :class:`~rndx.envs.agv.core.AGVCore` (poses,
goals, static boxes, moving obstacles) and returns actions for every vehicle of the batch at
once. It exists to produce demonstrations, sanity-check that every task is solvable within
its time limit, and give learned agents a reference success rate.

Planner
    The static world (walls and shelves) is rasterised once per layout into an occupancy grid
    of ``resolution`` metres and inflated by ``radius + margin``: a cell is *free* when the
    vehicle's centre may stand there. For every goal a cost-to-go field over the free cells
    is computed with Dijkstra (8-connected, :func:`scipy.sparse.csgraph.dijkstra` from the goal
    cell on a symmetric grid graph). Each cell's cost grows near obstacles, so the optimal
    paths keep to the aisle centres instead of hugging shelf corners. From Dijkstra's
    predecessor array (the next cell towards the goal) the planner stores a *jump table*: for
    every cell, the cell ``lookahead`` metres further along the optimal path. Fields are
    cached per goal cell (LRU) because episodes reuse the few goal / pick / drop stations.

Tracker
    Pure pursuit on the jump table: the near target is one jump ahead (~1.2-1.7 m), the far
    target two jumps ahead (used to slow down before corners). A proportional heading
    controller steers; the vehicle turns in place when the heading error exceeds
    ``turn_in_place`` and slows for sharp turns ahead and close to the goal. A vehicle that
    starts inside the inflated zone first backs out towards its nearest free cell.

Moving obstacles (``core.m > 0``)
    A vehicle stops while any obstacle is within ``stop_distance`` (gap between the two
    discs) inside a +-``stop_cone`` cone ahead. Obstacles never avoid the vehicle, so a
    short rollout then picks between driving, waiting and backing off (see
    :meth:`AGVExpert._avoid`). The static plan ignores obstacles: in 2 m aisles the vehicle
    cannot pass an AGV, so the dynamic env is far from solved (about 35-50% success on the
    small layout, 85% on the large one).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import distance_transform_edt
from scipy.sparse.csgraph import dijkstra

from rndx.envs.agv.core import AGVCore

# 8-connected moves (d_row, d_col); rows are y, columns are x
_MOVES = ((0, 1), (1, 0), (1, 1), (1, -1))  # half of them: the graph is symmetric
# (id(world), vehicle radius, resolution, margin) -> (world, its GridMap); see GridMap.cached
_GRIDS: OrderedDict[tuple, tuple[Any, GridMap]] = OrderedDict()
_MAX_GRIDS = 8
PLAN_RESOLUTION, PLAN_MARGIN = 0.1, 0.15  # the expert's planning grid: cell size, inflation (m)


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (a + np.pi) % (2.0 * np.pi) - np.pi


@dataclass
class GridMap:
    """The inflated occupancy grid of one world and its (goal independent) grid graph.

    Cell ``(r, c)`` has its centre at ``((c + 0.5) * res, (r + 0.5) * res)``; row = y, so the
    grid is *not* flipped like the layout text. Flat index = ``r * cols + c``.
    """

    res: float
    rows: int
    cols: int
    clearance: np.ndarray  # (rows, cols) metres from the cell centre to the nearest box
    free: np.ndarray  # (rows, cols) bool: the vehicle's centre may stand here
    nearest_free: np.ndarray  # (rows * cols,) flat index of the nearest free cell
    graph: sp.csr_matrix  # symmetric 8-connected graph over free cells, cost-weighted edges

    @classmethod
    def build(
        cls,
        core: AGVCore,
        resolution: float,
        margin: float,
        cost_weight: float = 3.0,
        cost_range: float = 1.0,
    ) -> GridMap:
        """Rasterise ``core.world``'s boxes at ``resolution`` and inflate by radius + margin.

        ``cost_weight`` / ``cost_range``: a cell whose clearance is below ``cost_range``
        metres costs up to ``1 + cost_weight`` per metre (quadratic in the shortfall, at the
        inflation border), so paths prefer the aisle centres (1 m from the shelves).
        """
        width, height = core.world.layout.size
        res = float(resolution)
        cols, rows = int(np.ceil(width / res - 1e-9)), int(np.ceil(height / res - 1e-9))
        xs, ys = (np.arange(cols) + 0.5) * res, (np.arange(rows) + 0.5) * res
        boxes = core.world.boxes
        boxes = boxes[(boxes[:, 0] < width) & (boxes[:, 1] < height)]  # drop the far padding box
        in_x = (xs[None, :] > boxes[:, :1]) & (xs[None, :] < boxes[:, 2:3])  # (K, cols)
        in_y = (ys[None, :] > boxes[:, 1:2]) & (ys[None, :] < boxes[:, 3:4])  # (K, rows)
        blocked = np.einsum("kr,kc->rc", in_y.astype(np.int32), in_x.astype(np.int32)) > 0
        # the EDT measures centre-to-centre distance to the nearest blocked cell; the box edge
        # lies half a cell closer than that blocked centre
        clearance = distance_transform_edt(~blocked) * res - 0.5 * res
        free = clearance >= core.cfg.radius + margin
        # for cells in the inflated zone (a vehicle spawned near a shelf): nearest free cell
        _, (nr, nc) = distance_transform_edt(~free, return_indices=True)
        nearest_free = (nr * cols + nc).ravel()
        shortfall = np.clip(
            (cost_range - clearance) / max(cost_range - core.cfg.radius - margin, 1e-6), 0.0, 1.0
        )
        cost = 1.0 + cost_weight * shortfall**2
        idx = np.arange(rows * cols).reshape(rows, cols)
        src, dst, wgt = [], [], []
        for dr, dc in _MOVES:
            r0, r1 = max(0, -dr), rows - max(0, dr)
            c0, c1 = max(0, -dc), cols - max(0, dc)
            a = (slice(r0, r1), slice(c0, c1))
            b = (slice(r0 + dr, r1 + dr), slice(c0 + dc, c1 + dc))
            ok = free[a] & free[b]
            if dr and dc:  # no diagonal squeeze between two blocked cells
                ok &= free[r0 + dr : r1 + dr, c0:c1] & free[r0:r1, c0 + dc : c1 + dc]
            length = res * np.hypot(dr, dc)
            src.append(idx[a][ok])
            dst.append(idx[b][ok])
            wgt.append(length * 0.5 * (cost[a][ok] + cost[b][ok]))
        s, d, w = np.concatenate(src), np.concatenate(dst), np.concatenate(wgt)
        n = rows * cols
        graph = sp.csr_matrix((np.r_[w, w], (np.r_[s, d], np.r_[d, s])), shape=(n, n))
        return cls(res, rows, cols, clearance, free, nearest_free, graph)

    @classmethod
    def cached(
        cls, core: AGVCore, resolution: float = PLAN_RESOLUTION, margin: float = PLAN_MARGIN
    ) -> GridMap:
        """:meth:`build`, once per world, vehicle radius and setting (the grid is read only;
        the last few are kept): every expert and shift hook on one layout shares it."""
        key = (id(core.world), core.cfg.radius, float(resolution), float(margin))
        hit = _GRIDS.get(key)
        if hit is None or hit[0] is not core.world:
            if len(_GRIDS) >= _MAX_GRIDS:
                _GRIDS.popitem(last=False)
            hit = _GRIDS[key] = (core.world, cls.build(core, resolution, margin))
        return hit[1]

    def cell_of(self, xy: np.ndarray) -> np.ndarray:
        """Flat cell index of points (n, 2), clipped into the grid."""
        c = np.clip((xy[:, 0] / self.res).astype(np.int64), 0, self.cols - 1)
        r = np.clip((xy[:, 1] / self.res).astype(np.int64), 0, self.rows - 1)
        return r * self.cols + c

    def centre(self, flat: np.ndarray) -> np.ndarray:
        """Centres (n, 2) in metres of flat cell indices."""
        r, c = np.divmod(flat, self.cols)
        return np.stack([(c + 0.5) * self.res, (r + 0.5) * self.res], axis=-1)


def planned_route(grid: GridMap, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cell centres (k, 2) of the planner's cheapest path from point ``a`` to point ``b``
    (both snapped to their nearest free cell), ``a`` and ``b`` included; the straight segment
    sampled every grid cell when ``b`` cannot be reached from ``a``."""
    src, dst = (int(grid.nearest_free[grid.cell_of(np.reshape(p, (1, 2)))[0]]) for p in (a, b))
    _, pred = dijkstra(grid.graph, directed=True, indices=dst, return_predecessors=True)
    cells, c = [src], src
    while c != dst and pred[c] >= 0:
        c = int(pred[c])
        cells.append(c)
    if c != dst:
        k = max(int(np.hypot(*(np.subtract(b, a))) / grid.res), 1) + 1
        return np.asarray(a) + np.linspace(0.0, 1.0, k)[:, None] * np.subtract(b, a)
    return np.vstack([np.reshape(a, (1, 2)), grid.centre(np.array(cells)), np.reshape(b, (1, 2))])


@dataclass
class Field:
    """The plan towards one goal cell: ``jump[c]`` is the cell ``steps`` moves further along
    the optimal path from cell ``c`` (the goal cell maps to itself, unreachable cells too)."""

    goal_cell: int
    jump: np.ndarray  # (rows * cols,) int32
    reachable: np.ndarray  # (rows * cols,) bool: finite cost-to-go


class AGVExpert:
    """Scripted expert driving every vehicle of an :class:`AGVCore` to its current goal.

    Args:
        core: the batched core whose vehicles it drives (read only; it never steps it).
        resolution: planning grid cell size in metres.
        margin: extra inflation beyond the vehicle radius, metres.
        lookahead: pure-pursuit distance in metres (along the path, counted in grid moves).
        turn_in_place: heading error (radians) above which the vehicle stops and turns.
        stop_distance, stop_cone: stop while a moving obstacle's disc is closer than
            ``stop_distance`` metres to the vehicle's disc within +-``stop_cone`` radians ahead.
        max_fields: number of cost-to-go fields kept in the LRU cache (~4 bytes per cell each).

    ``act()`` returns ``(n, 2)`` actions in [-1, 1]. Plans are refreshed automatically when a
    vehicle's goal moved more than 0.5 m (pick -> drop switch, reset, a moving goal) or its
    step counter is back at 0; :meth:`reset` forgets them explicitly.
    """

    def __init__(
        self,
        core: AGVCore,
        resolution: float = PLAN_RESOLUTION,
        margin: float = PLAN_MARGIN,
        lookahead: float = 1.2,
        turn_in_place: float = np.deg2rad(60.0),
        stop_distance: float = 1.2,
        stop_cone: float = np.deg2rad(40.0),
        max_fields: int = 128,
    ):
        self.core = core
        self.cfg = core.cfg
        self.resolution = float(resolution)
        self.margin = float(margin)
        self.grid = GridMap.cached(core, self.resolution, self.margin)
        self.steps = max(int(round(lookahead / self.resolution)), 1)
        self.turn_in_place = float(turn_in_place)
        self.stop_distance = float(stop_distance)
        self.stop_cone = float(stop_cone)
        self.max_fields = int(max_fields)
        self.fields: OrderedDict[int, Field] = OrderedDict()
        self.plan_times: list[float] = []  # seconds per field computation (cache misses)
        self._field: list[Field | None] = [None] * core.n
        self._goal = np.full((core.n, 2), np.nan)  # goal each vehicle's field was made for

    # ------------------------------------------------------------------ planning
    def reset(self, idx: Any = None) -> None:
        """Forget the plans of vehicles ``idx`` (int array / list / int; all when None).

        Cached fields stay: they depend only on the goal cell."""
        sel = range(self.core.n) if idx is None else np.atleast_1d(np.asarray(idx, np.int64))
        for i in sel:
            self._field[int(i)] = None
            self._goal[int(i)] = np.nan

    def field(self, goal: np.ndarray) -> Field:
        """The (cached) plan towards the goal point ``goal`` (2,)."""
        g = self.grid
        cell = int(g.cell_of(np.asarray(goal, np.float64).reshape(1, 2))[0])
        cell = int(g.nearest_free[cell])  # goals may lie in the inflated zone: plan to its edge
        f = self.fields.get(cell)
        if f is not None:
            self.fields.move_to_end(cell)
            return f
        t0 = time.perf_counter()
        dist, pred = dijkstra(g.graph, directed=True, indices=cell, return_predecessors=True)
        n = g.rows * g.cols
        nxt = pred.astype(np.int32)
        unset = nxt < 0  # the goal itself and unreachable cells stay put
        nxt[unset] = np.arange(n, dtype=np.int32)[unset]
        jump = nxt
        for _ in range(self.steps - 1):
            jump = nxt[jump]
        f = Field(cell, jump, np.isfinite(dist))
        self.plan_times.append(time.perf_counter() - t0)
        self.fields[cell] = f
        if len(self.fields) > self.max_fields:
            self.fields.popitem(last=False)
        return f

    def _refresh(self, replan_distance: float = 0.5) -> None:
        """Replan for vehicles whose episode restarted or whose goal moved more than
        ``replan_distance`` metres since their plan (a moving goal: the tracker aims at the
        goal point itself on the last stretch, so a plan a few cells old still leads there)."""
        core = self.core
        moved = np.hypot(*(core.goal - self._goal).T)
        stale = (core.steps == 0) | ~(moved <= replan_distance)  # NaN (no plan yet): stale
        for i in np.nonzero(stale)[0]:
            self._field[i] = self.field(core.goal[i])
            self._goal[i] = core.goal[i]

    # ------------------------------------------------------------------ tracking
    def act(self) -> np.ndarray:
        """Actions (n, 2) in [-1, 1] (linear, angular command fractions) for every vehicle."""
        core, cfg, g = self.core, self.cfg, self.grid
        self._refresh()
        n = core.n
        raw = g.cell_of(core.pos)
        cell = g.nearest_free[raw]
        near = np.empty(n, np.int64)
        far = np.empty(n, np.int64)
        at_goal = np.zeros(n, bool)
        lost = np.zeros(n, bool)
        for i in range(n):
            f = self._field[i]
            c = int(cell[i])
            a = f.jump[c]
            near[i], far[i] = a, f.jump[a]
            at_goal[i] = a == f.goal_cell
            lost[i] = not f.reachable[c]
        target = g.centre(near)
        far_xy = g.centre(far)
        # on the last stretch aim at the goal point itself, not at its grid cell
        final = at_goal | lost
        target[final] = core.goal[final]
        far_xy[(far == near) | final] = target[(far == near) | final]
        # a vehicle inside the inflated zone (spawned next to a shelf corner) first backs out
        # towards its nearest free cell: the chord to a target 1.2 m ahead may graze the corner
        inflated = ~g.free.ravel()[raw]
        if inflated.any():
            out = g.centre(cell[inflated]) - core.pos[inflated]
            out /= np.maximum(np.hypot(out[:, 0], out[:, 1]), 1e-9)[:, None]
            target[inflated] = far_xy[inflated] = core.pos[inflated] + 0.6 * out

        d = target - core.pos
        err = _wrap(np.arctan2(d[:, 1], d[:, 0]) - core.theta)
        df = far_xy - core.pos
        err_far = _wrap(np.arctan2(df[:, 1], df[:, 0]) - core.theta)
        dist_goal = np.hypot(*(core.goal - core.pos).T)

        # heading: proportional, with a little damping of the current turn rate so the
        # alpha-limited turn does not overshoot
        w_cmd = 2.5 * err - 0.3 * core.w
        # speed: zero when turning in place, linear fade with the heading error, slow before
        # sharp turns ahead (far target off the heading), and near the goal
        fade = np.clip(1.0 - np.abs(err) / self.turn_in_place, 0.0, 1.0)
        corner = np.clip(1.0 - (np.abs(err_far) - np.deg2rad(20.0)) / np.deg2rad(70.0), 0.35, 1.0)
        v_cmd = cfg.v_max * np.minimum(fade, corner)
        v_cmd = np.minimum(v_cmd, 0.4 + 0.8 * dist_goal)
        v_cmd[inflated] = np.minimum(v_cmd[inflated], 0.3)
        v_cmd[np.abs(err) > self.turn_in_place] = 0.0
        if core.m:
            v_cmd = self._avoid(v_cmd)
        return np.clip(np.stack([v_cmd / cfg.v_max, w_cmd / cfg.w_max], axis=1), -1.0, 1.0)

    def _obstacle_velocities(self) -> np.ndarray:
        """(n, m, 2) current velocities of the ping-pong obstacles (from the core's state)."""
        core = self.core
        direction = (core.obs_p1 - core.obs_p0) / core.obs_len[..., None]
        sign = np.where(core.obs_s <= core.obs_len, 1.0, -1.0)
        return direction * (sign * core.obs_speed)[..., None]

    def _avoid(
        self, v_plan: np.ndarray, horizon: float = 2.0, safety: float = 0.15, reverse: float = -0.6
    ) -> np.ndarray:
        """Speed commands (n,) that respect moving obstacles.

        The cone rule comes first: a vehicle with an obstacle close ahead gets v = 0 (stop
        and wait). Because obstacles do not avoid the vehicle, a stopped vehicle can still be
        run over, so each vehicle then picks the first of (planned speed, stop, back off at
        ``reverse`` m/s) whose straight-line rollout over ``horizon`` s (acceleration-limited,
        obstacles at constant velocity) keeps ``safety`` metres from every obstacle; backing
        off also needs static clearance behind. When none is safe, the one with the largest
        predicted gap wins."""
        core, cfg = self.core, self.cfg
        n, dt = core.n, cfg.dt
        k = np.arange(1, int(round(horizon / dt)) + 1) * dt  # (T,)
        heading = np.stack([np.cos(core.theta), np.sin(core.theta)], axis=1)  # (n, 2)
        blocked = self._blocked()
        cands = np.stack([np.where(blocked, 0.0, v_plan), np.zeros(n), np.full(n, reverse)], 1)
        # acceleration-limited speed profile towards each candidate, integrated to distance
        dv = np.clip(cands[..., None] - core.v[:, None, None], -cfg.a_max * k, cfg.a_max * k)
        dist = np.cumsum((core.v[:, None, None] + dv) * dt, axis=-1)  # (n, 3, T)
        path = core.pos[:, None, None, :] + dist[..., None] * heading[:, None, None, :]
        obs = (
            core.obs_pos[:, None, :, :]
            + k[None, :, None, None] * self._obstacle_velocities()[:, None, :, :]
        )  # (n, T, m, 2)
        rel = path[:, :, :, None, :] - obs[:, None]  # (n, 3, T, m, 2)
        gap = np.hypot(rel[..., 0], rel[..., 1]) - core.obs_radius - cfg.radius
        min_gap = gap.min(axis=(2, 3))  # (n, 3)
        behind_ok = core.world.clearance(path[:, 2, -1]) >= cfg.radius + 0.1
        min_gap[~behind_ok, 2] = -np.inf
        safe = min_gap > safety
        choice = np.where(safe.any(axis=1), np.argmax(safe, axis=1), np.argmax(min_gap, axis=1))
        return cands[np.arange(n), choice]

    def _blocked(self) -> np.ndarray:
        """(n,) True where a moving obstacle is within stop_distance in the cone ahead."""
        core = self.core
        rel = core.obs_pos - core.pos[:, None, :]  # (n, m, 2)
        gap = np.hypot(rel[..., 0], rel[..., 1]) - core.obs_radius[None] - self.cfg.radius
        bearing = _wrap(np.arctan2(rel[..., 1], rel[..., 0]) - core.theta[:, None])
        return np.any((gap < self.stop_distance) & (np.abs(bearing) < self.stop_cone), axis=1)


def expert_actions(env: Any) -> np.ndarray:
    """The expert's action (2,) for a single :class:`AGVWarehouseEnv` (wrapped or not).

    The :class:`AGVExpert` lives on the unwrapped env as ``_rndx_expert`` (so every wrapper
    of one env shares it) and is rebuilt if the env's core was replaced. A restarted episode
    (``core.steps[0] == 0``) resets its plan."""
    base = env.unwrapped
    core = base.core
    expert = getattr(base, "_rndx_expert", None)
    if expert is None or expert.core is not core:
        expert = AGVExpert(core)
        base._rndx_expert = expert
    if core.steps[0] == 0:
        expert.reset(0)
    return expert.act()[0]


def expert_success_rate(env: Any, episodes: int, seed: int = 1000) -> float:
    """Share of ``episodes`` episodes (reset seeds ``seed``, ``seed + 1``, ...) that the
    scripted expert ends in success on the single AGV env ``env`` (2D or PyBullet, wrapped
    or not, e.g. by :func:`rndx.envs.shifts.make_shifted_env`): the reference an env or a
    shift is checked against."""
    wins = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        term = trunc = False
        info: dict[str, Any] = {}
        while not (term or trunc):
            _, _, term, trunc, info = env.step(expert_actions(env))
        wins.append(bool(info.get("is_success", False)))
    return float(np.mean(wins))
