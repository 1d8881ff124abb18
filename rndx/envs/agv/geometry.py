"""The two geometry kernels of the batched core: lidar ray casting and collision distance.

Compiled with numba: in numpy, one vehicle's step costs ~100 small array calls whose
per-call overhead (~1-2 us each) dominates, and the (vehicles, beams, boxes) temporaries
of a vectorised slab test dominate at large batch sizes (methods.md section 5 measured
~30k vehicle-steps/s for the numpy brute force). Compiled loops do the same arithmetic
without either cost. ``cache=True`` keeps the compiled code on disk between processes.

Both kernels take a per-cell candidate list of boxes (``World.candidates``/``World.near``),
so each beam is tested against the handful of boxes that can be in reach, not all of them;
the lidar also skips boxes behind the beam or farther than its nearest hit so far. Neither
changes a range in the last bit (tested against every box on every beam): trained agents'
results hang on the last bits, so the runs in README reproduce.
"""

from __future__ import annotations

import math

import numba
import numpy as np

SKIP_MARGIN = 1e-9  # metres: cast_rays' box-skipping bound, far above the slab test's rounding


@numba.njit(cache=True)
def _cell(x: float, y: float, cell: float, rows: int, cols: int) -> tuple[int, int]:
    c = min(max(int(math.floor(x / cell)), 0), cols - 1)
    r = min(max(rows - 1 - int(math.floor(y / cell)), 0), rows - 1)
    return r, c


@numba.njit(cache=True)
def _entry(o: float, d: float, lo: float, hi: float) -> float:
    """Ray parameter at which o + t d enters the slab lo <= x <= hi; a ray parallel to the
    slab is inside it everywhere (-inf) or nowhere (inf)."""
    if d > 0.0:
        return (lo - o) / d
    if d < 0.0:
        return (hi - o) / d
    return -np.inf if lo <= o <= hi else np.inf


@numba.njit(cache=True)
def _exit(o: float, d: float, lo: float, hi: float) -> float:
    """Ray parameter at which o + t d leaves the slab (see :func:`_entry`)."""
    if d > 0.0:
        return (hi - o) / d
    if d < 0.0:
        return (lo - o) / d
    return np.inf if lo <= o <= hi else -np.inf


@numba.njit(cache=True)
def _box_gap(x: float, y: float, boxes: np.ndarray, bx: int) -> float:
    """Distance from the point (x, y) to box ``bx`` (0 inside it)."""
    gx = max(max(boxes[bx, 0] - x, 0.0), x - boxes[bx, 2])
    gy = max(max(boxes[bx, 1] - y, 0.0), y - boxes[bx, 3])
    return math.sqrt(gx * gx + gy * gy)


@numba.njit(cache=True)
def cast_rays(
    out: np.ndarray,
    pos: np.ndarray,
    theta: np.ndarray,
    offsets: np.ndarray,
    boxes: np.ndarray,
    candidates: np.ndarray,
    cell: float,
    obs_pos: np.ndarray,
    obs_radius: np.ndarray,
    max_range: float,
) -> None:
    """Writes into ``out`` (n, b) the ranges from each vehicle along each beam to the first
    box or circle, capped at ``max_range``.

    Boxes are (x0, y0, x1, y1); slab test per box, nearest box first, stopping at the first
    box no nearer to the vehicle than the beam's nearest hit so far. Circles: the smaller root of
    |o + t d - c|^2 = r^2. A vehicle inside a box or circle sees range 0 on every beam.
    The caller owns ``out`` (no array is allocated and returned here: in a single env's step
    each array a kernel returns costs about as much as a small kernel's work).
    """
    n, b = pos.shape[0], offsets.shape[0]
    rows, cols, k = candidates.shape
    m = obs_radius.shape[0]
    gap = np.empty(k)
    rel = np.empty((k, 4))  # the vehicle's candidate boxes relative to it, nearest first
    for i in range(n):
        ox, oy = pos[i, 0], pos[i, 1]
        r, c = _cell(ox, oy, cell, rows, cols)
        # the vehicle's distance to each candidate box bounds any beam's hit on it from below,
        # so a beam skips the boxes no nearer than what it already hit (SKIP_MARGIN absorbs
        # the slab test's rounding: the ranges are bit-identical to testing every box). The
        # boxes within max_range are kept sorted by that distance (insertion sort of a
        # handful), so a beam stops at the first one no nearer than its best hit; they are
        # kept as (x0 - ox, y0 - oy, x1 - ox, y1 - oy), the differences the slab test takes.
        kept = 0
        for q in range(k):
            bx = candidates[r, c, q]
            g = _box_gap(ox, oy, boxes, bx) - SKIP_MARGIN
            if g >= max_range:  # no beam can hit it before its range runs out
                continue
            p = kept
            while p > 0 and gap[p - 1] > g:
                gap[p] = gap[p - 1]
                rel[p] = rel[p - 1]
                p -= 1
            gap[p] = g
            rel[p, 0], rel[p, 1] = boxes[bx, 0] - ox, boxes[bx, 1] - oy
            rel[p, 2], rel[p, 3] = boxes[bx, 2] - ox, boxes[bx, 3] - oy
            kept += 1
        for j in range(b):
            a = theta[i] + offsets[j]
            dx, dy = math.cos(a), math.sin(a)
            best = max_range
            for q in range(kept):
                if gap[q] >= best:
                    break
                x0, y0, x1, y1 = rel[q, 0], rel[q, 1], rel[q, 2], rel[q, 3]
                # a box wholly behind the vehicle along the beam's x or y is missed (its exit
                # parameter is negative): no division needed
                if (dx > 0.0 and x1 < 0.0) or (dx < 0.0 and x0 > 0.0):
                    continue
                if (dy > 0.0 and y1 < 0.0) or (dy < 0.0 and y0 > 0.0):
                    continue
                # slab test from the origin (the vehicle), lazily: the exits (two more
                # divisions) only for a box entered nearer than the best hit so far
                near = _entry(0.0, dx, x0, x1)
                if near >= best:
                    continue
                near = max(max(near, _entry(0.0, dy, y0, y1)), 0.0)
                if near >= best:
                    continue
                far = min(_exit(0.0, dx, x0, x1), _exit(0.0, dy, y0, y1))
                if far >= near:
                    best = near
            for q in range(m):
                rx, ry = obs_pos[i, q, 0] - ox, obs_pos[i, q, 1] - oy
                c2 = rx * rx + ry * ry - obs_radius[q] * obs_radius[q]
                if c2 < 0.0:
                    best = 0.0
                    continue
                proj = rx * dx + ry * dy
                disc = proj * proj - c2
                if proj >= 0.0 and disc >= 0.0:
                    t = proj - math.sqrt(disc)
                    if t < best:
                        best = t
            out[i, j] = best


@numba.njit(cache=True, inline="always")
def _clearance_at(x: float, y: float, boxes: np.ndarray, near: np.ndarray, cell: float) -> float:
    """Distance from the point (x, y) to the nearest box among its cell's ``near`` list.
    Inlined (numba IR) into its callers: a compiled call per point costs the batched loops
    about as much as the work."""
    rows, cols, k = near.shape
    r, c = _cell(x, y, cell, rows, cols)
    best = np.inf
    for q in range(k):
        best = min(best, _box_gap(x, y, boxes, near[r, c, q]))
    return best


@numba.njit(cache=True)
def point_clearance(x: float, y: float, boxes: np.ndarray, near: np.ndarray, cell: float) -> float:
    """:func:`clearance` of one point (a reset's sampled start or goal: no array in or out)."""
    return _clearance_at(x, y, boxes, near, cell)


@numba.njit(cache=True)
def clearance(pos: np.ndarray, boxes: np.ndarray, near: np.ndarray, cell: float) -> np.ndarray:
    """Distance (n,) from each point to the nearest box among its cell's ``near`` list."""
    n = pos.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = _clearance_at(pos[i, 0], pos[i, 1], boxes, near, cell)
    return out


@numba.njit(cache=True)
def clip_actions(actions: np.ndarray, out: np.ndarray) -> bool:
    """Writes ``actions`` (n, 2) clipped to [-1, 1] into ``out`` (n, 2) float64; False (``out``
    unfinished) at the first NaN or inf. One compiled pass instead of a float64 copy, a
    finiteness reduction and two clipping ufuncs: the vector step's validation."""
    for i in range(actions.shape[0]):
        for j in range(2):
            x = float(actions[i, j])
            if not math.isfinite(x):
                return False
            out[i, j] = min(max(x, -1.0), 1.0)
    return True


@numba.njit(cache=True)
def integrate(
    pos: np.ndarray,
    theta: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    actions: np.ndarray,
    v_max: float,
    w_max: float,
    gain: float,
    dv: float,
    dw: float,
    dt: float,
) -> None:
    """Unicycle step in place. Commands = action x limit x gain, saturated at the limits;
    velocities move towards them by at most dv, dw (acceleration limits x dt); the pose
    advances along the midpoint heading."""
    for i in range(pos.shape[0]):
        v_cmd = min(max(actions[i, 0] * v_max * gain, -v_max), v_max)
        w_cmd = min(max(actions[i, 1] * w_max * gain, -w_max), w_max)
        v[i] += min(max(v_cmd - v[i], -dv), dv)
        w[i] += min(max(w_cmd - w[i], -dw), dw)
        mid = theta[i] + 0.5 * w[i] * dt
        pos[i, 0] += v[i] * math.cos(mid) * dt
        pos[i, 1] += v[i] * math.sin(mid) * dt
        th = theta[i] + w[i] * dt
        theta[i] = (th + math.pi) % (2.0 * math.pi) - math.pi


@numba.njit(cache=True)
def collisions(
    pos: np.ndarray,
    radius: float,
    boxes: np.ndarray,
    near: np.ndarray,
    cell: float,
    width: float,
    height: float,
    obs_pos: np.ndarray,
    obs_radius: np.ndarray,
) -> np.ndarray:
    """(n,) True where a vehicle of ``radius`` overlaps a box or obstacle or left the floor."""
    n = pos.shape[0]
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        x, y = pos[i, 0], pos[i, 1]
        gap = _clearance_at(x, y, boxes, near, cell)
        hit = gap < radius or x < 0.0 or y < 0.0 or x > width or y > height
        for q in range(obs_radius.shape[0]):
            dx, dy = obs_pos[i, q, 0] - x, obs_pos[i, q, 1] - y
            if dx * dx + dy * dy < (radius + obs_radius[q]) ** 2:
                hit = True
        out[i] = hit
    return out


@numba.njit(cache=True)
def features(
    obs: np.ndarray,
    poses: np.ndarray,
    ranges: np.ndarray,
    pos: np.ndarray,
    theta: np.ndarray,
    goal: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    phase: np.ndarray,
    lidar_range: float,
    diag: float,
    v_max: float,
    w_max: float,
    with_phase: bool,
) -> None:
    """Writes the observation rows (lidar / range, goal distance / diag, cos and sin of the
    goal bearing in the vehicle frame, v / v_max, w / w_max [, carrying]) into ``obs``
    (n, >= b + 5 [+ 1]) float32, its further columns left as they are, and the poses
    (x, y, cos, sin) into ``poses`` (n, 4) float32."""
    n, b = ranges.shape
    for i in range(n):
        for j in range(b):
            obs[i, j] = ranges[i, j] / lidar_range
        gx, gy = goal[i, 0] - pos[i, 0], goal[i, 1] - pos[i, 1]
        bearing = math.atan2(gy, gx) - theta[i]
        obs[i, b] = min(math.sqrt(gx * gx + gy * gy) / diag, 1.0)
        obs[i, b + 1] = math.cos(bearing)
        obs[i, b + 2] = math.sin(bearing)
        obs[i, b + 3] = v[i] / v_max
        obs[i, b + 4] = w[i] / w_max
        if with_phase:
            obs[i, b + 5] = phase[i]
        poses[i, 0], poses[i, 1] = pos[i, 0], pos[i, 1]
        poses[i, 2], poses[i, 3] = math.cos(theta[i]), math.sin(theta[i])


@numba.njit(cache=True)
def goal_events(
    pos: np.ndarray,
    goal: np.ndarray,
    final_goal: np.ndarray,
    phase: np.ndarray,
    prev_dist: np.ndarray,
    collision: np.ndarray,
    goal_radius: float,
    pick_drop: bool,
    goal_reward: float,
    pick_reward: float,
    collision_penalty: float,
    progress_coef: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Goal bookkeeping in place (phase, goal, prev_dist) and the reward terms.

    Returns success (n,) bool, picked (n,) bool and terms (4, n): reward_goal,
    reward_collision, reward_progress, reward.
    A pick switches the goal to the drop station; the progress term (0 unless
    ``progress_coef``) rewards the decrease of the straight-line goal distance and skips the
    step of a pick, where the goal jumps."""
    n = pos.shape[0]
    success_out = np.empty(n, dtype=np.bool_)
    picked_out = np.empty(n, dtype=np.bool_)
    terms = np.empty((4, n))
    for i in range(n):
        gx, gy = goal[i, 0] - pos[i, 0], goal[i, 1] - pos[i, 1]
        dist = math.sqrt(gx * gx + gy * gy)
        reached = dist < goal_radius and not collision[i]
        picked = pick_drop and reached and phase[i] == 0
        success = reached and not picked
        if picked:
            phase[i] = 1
            goal[i, 0], goal[i, 1] = final_goal[i, 0], final_goal[i, 1]
            gx, gy = goal[i, 0] - pos[i, 0], goal[i, 1] - pos[i, 1]
            dist = math.sqrt(gx * gx + gy * gy)
        r_goal = (goal_reward if success else 0.0) + (pick_reward if picked else 0.0)
        r_coll = -collision_penalty if collision[i] else 0.0
        r_prog = 0.0 if picked else progress_coef * (prev_dist[i] - dist)
        prev_dist[i] = dist
        success_out[i], picked_out[i] = success, picked
        terms[0, i], terms[1, i], terms[2, i] = r_goal, r_coll, r_prog
        terms[3, i] = r_goal + r_coll + r_prog
    return success_out, picked_out, terms
