"""Named, seedable distribution shifts per env family, to provoke (or not) failures.

Each env family registers its suite with :func:`register_shifts` (the AGV warehouse ids, the
Bullet AGV with the same suite, and rndx/MujocoPush-v0 here); :func:`shifts_for` looks a suite
up by env id, and an id without one gets ``nominal`` only. Every function takes ``env_id``
(default: the AGV warehouse), so an unknown name is an error that lists the shifts known for
that env.

AGV warehouse (the rest of this docstring):

Each shift is env options (keyword overrides of :class:`~rndx.envs.agv.core.AGVConfig`) plus,
where options cannot express it, a reset hook that edits the freshly reset core (goal,
obstacle placement). They apply to the batched core (:func:`apply_reset_hook`, used by
``rndx.monitors.rollouts``) and to the single Gymnasium env (:class:`ShiftWrapper`,
:func:`make_shifted_env`) the same way. A rollout's label is always the env's own outcome
(success, or collision / time-out); a shift never labels anything.

Failure-inducing shifts: ``unseen_layout`` (a procedurally generated warehouse), ``crowd``
(pedestrians crossing the aisles), ``lidar_noise`` (range noise and beam dropout),
``actuator_loss`` (motors deliver a fraction of the commanded speed), ``slippery_floor``
(low traction: acceleration limits cut to a fraction). Benign shifts, for false alarms:
``clutter_far`` (static clutter far from the route the expert plans), ``goal_shift`` (the goal
moved by up to 0.4 m), and ``nominal`` (no shift: held-out in-distribution rollouts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

ResetHook = Callable[[Any, int, np.random.Generator], None]
DEFAULT_ENV = "rndx/AGVWarehouse-v0"


@dataclass(frozen=True)
class Shift:
    """A named shift: ``options(seed)`` gives env keyword overrides; ``reset_hook(core, i,
    rng)`` edits vehicle i of a freshly reset core; ``benign`` shifts should not cause
    failures."""

    name: str
    description: str
    benign: bool
    options: Callable[[int], dict[str, Any]] = field(default=lambda seed: {})
    reset_hook: ResetHook | None = None


_CLUTTER = 3  # static clutter items (pedestrian discs frozen in place)


def _route(core: Any, i: int) -> np.ndarray:
    """Points (k, 2) along the scripted expert's planned route of vehicle i's task: start ->
    goal, and for ``pick_drop`` on to the drop station (the core's ``final_goal``)."""
    from rndx.envs.experts import GridMap, planned_route

    grid = GridMap.cached(core)  # the expert's default planning grid
    legs = [(core.pos[i], core.goal[i])]
    if core.cfg.task == "pick_drop":
        legs.append((core.goal[i], core.final_goal[i]))
    return np.vstack([planned_route(grid, a, b) for a, b in legs])


def _clutter_far(core: Any, i: int, rng: np.random.Generator) -> None:
    """Freeze the obstacle discs at free points >= 3 m from the route the scripted expert
    plans for the task (start -> goal; for ``pick_drop`` start -> pick -> drop), start and
    goal included, where a vehicle can still pass between disc and wall (fallback: the
    farthest such points, then any)."""
    free = core.world.layout.cells(".SGPD")
    route = _route(core, i)
    dist = np.min(np.hypot(*(free[:, None, :] - route[None, :, :]).transpose(2, 0, 1)), axis=1)
    # room to pass: a vehicle fits between the disc and the nearest wall or shelf, so no
    # clutter closes an aisle the expert might take instead of the planned one
    cfg = core.cfg
    clear = core.world.clearance(free) >= cfg.pedestrian_radius + 2 * cfg.radius + 0.15
    ok = np.flatnonzero((dist >= 3.0) & clear)
    if len(ok) < core.m:
        ok = np.argsort(-np.where(clear, dist, -1.0))[: max(core.m, 1)]
    pick = rng.choice(ok, size=core.m, replace=len(ok) < core.m)
    xy = free[pick] + rng.uniform(-0.2, 0.2, size=(core.m, 2))
    core.place(i, {"obstacles": xy})


def _goal_shift(core: Any, i: int, rng: np.random.Generator, radius: float = 0.4) -> None:
    """Move the goal by 0.2-0.4 m (up to ``radius``) in a random direction, to a point that
    keeps the vehicle's clearance (else leave it). A moving goal's whole path moves by the
    same offset (the goal starts at its first end); for ``pick_drop`` the pick station moves
    and the drop station stays."""
    moving = core.cfg.goal_speed > 0
    for _ in range(20):
        ang, r = rng.uniform(-np.pi, np.pi), rng.uniform(0.5, 1.0) * radius
        off = r * np.array([np.cos(ang), np.sin(ang)])
        if moving:
            path = np.stack([core.goal_p0[i], core.goal_p1[i]]) + off
            pts = path[0] + np.linspace(0.0, 1.0, 50)[:, None] * (path[1] - path[0])
        else:
            pts = (core.goal[i] + off)[None]
        if np.all(core.world.clearance(pts) >= core.cfg.radius + 0.15):
            core.place(i, {"goal_path": path} if moving else {"goal": pts[0]})
            return


AGV_SHIFTS: dict[str, Shift] = {
    s.name: s
    for s in (
        Shift("nominal", "no shift (held-out in-distribution rollouts)", True),
        Shift(
            "unseen_layout",
            "a procedurally generated warehouse (layout_seed = 100 + seed)",
            False,
            lambda seed: {"layout": "procedural", "layout_seed": 100 + int(seed)},
        ),
        Shift(
            "crowd",
            "8 pedestrians walking along the aisles at 0.8-1.4 m/s",
            False,
            lambda seed: {"n_pedestrians": 8, "pedestrian_speed": (0.8, 1.4)},
        ),
        Shift(
            "lidar_noise",
            "lidar range noise std 0.3 m and 15% beam dropout",
            False,
            lambda seed: {"lidar_noise": 0.3, "lidar_dropout": 0.15},
        ),
        Shift(
            "actuator_loss",
            "motors deliver 35% of the commanded velocities",
            False,
            lambda seed: {"actuator_gain": 0.35},
        ),
        Shift(
            "slippery_floor",
            "low traction: acceleration limits cut to 15% (a_max 0.225, alpha_max 0.6)",
            False,
            lambda seed: {"a_max": 0.225, "alpha_max": 0.6},
        ),
        Shift(
            "clutter_far",
            f"{_CLUTTER} static clutter items >= 3 m from the planned route",
            True,
            lambda seed: {"n_pedestrians": _CLUTTER, "n_agvs": 0},
            _clutter_far,
        ),
        Shift("goal_shift", "the goal moved by 0.2-0.4 m", True, reset_hook=_goal_shift),
    )
}


# The push task's shifts are constructor keywords (rndx.envs.mujoco.push.SHIFTS holds their
# values); here they get a description and whether they should leave success unchanged.
_PUSH_TEXT = {
    "nominal": ("no shift (held-out in-distribution rollouts)", True),
    "goal_nudge": ("the goal moved by (0.02, -0.02) m, inside the 5 cm goal radius", True),
    "heavy_block": ("block mass 1.0 kg instead of 0.1 kg", False),
    "high_friction": ("block sliding friction 1.5 instead of 0.5", False),
    "goal_offset": ("the goal moved by (0.1, 0.1) m, towards the field's edge", False),
    "obstacle": ("an unobserved 6 cm box halfway between the block and the goal", False),
}


def _push_shifts() -> dict[str, Shift]:
    from rndx.envs.mujoco.push import SHIFTS as PUSH_KWARGS  # imports no MuJoCo

    if set(PUSH_KWARGS) != set(_PUSH_TEXT):
        raise RuntimeError(
            f"rndx.envs.mujoco.push.SHIFTS {sorted(PUSH_KWARGS)} and their descriptions "
            f"{sorted(_PUSH_TEXT)} must name the same shifts"
        )
    return {
        name: Shift(name, *_PUSH_TEXT[name], options=lambda seed, kw=kw: dict(kw))
        for name, kw in PUSH_KWARGS.items()
    }


NOMINAL_ONLY = {"nominal": AGV_SHIFTS["nominal"]}
# family -> (env ids, shifts); filled by register_shifts
_SUITES: dict[str, tuple[tuple[str, ...], dict[str, Shift]]] = {}


def register_shifts(family: str, env_ids: Any, shifts: dict[str, Shift]) -> None:
    """Register the named shifts of an env family (``env_ids``: the ids they apply to). The
    suite must hold ``nominal`` (calibration rolls out under it)."""
    if "nominal" not in shifts:
        raise ValueError(f"shift suite {family!r} needs a 'nominal' shift; got {sorted(shifts)}")
    _SUITES[family] = (tuple(env_ids), dict(shifts))


def shifts_for(env_id: str = DEFAULT_ENV) -> dict[str, Shift]:
    """The named shifts of ``env_id``'s family; ``{"nominal"}`` only for an id without a
    registered suite."""
    for ids, shifts in _SUITES.values():
        if env_id in ids:
            return shifts
    return NOMINAL_ONLY


def known_shifts(env_id: str = DEFAULT_ENV) -> list[str]:
    return list(shifts_for(env_id))


def get_shift(name: str, env_id: str = DEFAULT_ENV) -> Shift:
    """:raises ValueError: for a name unknown for ``env_id``, listing the known ones."""
    try:
        return shifts_for(env_id)[name]
    except KeyError:
        raise ValueError(
            f"unknown shift {name!r} for {env_id}; known: {known_shifts(env_id)}"
        ) from None


def shifted_kwargs(
    name: str, env_kwargs: dict[str, Any] | None, seed: int = 0, env_id: str = DEFAULT_ENV
) -> dict[str, Any]:
    """The env's keyword arguments with shift ``name`` applied (the shift's keys win)."""
    return {**(env_kwargs or {}), **get_shift(name, env_id).options(int(seed))}


def apply_reset_hook(
    name: str, core: Any, idx: Any, rngs: list[np.random.Generator], env_id: str = DEFAULT_ENV
) -> None:
    """Run the shift's reset hook on vehicles ``idx`` of a freshly reset core (a no-op for
    shifts without one); ``rngs[i]`` is vehicle i's generator."""
    hook = get_shift(name, env_id).reset_hook
    if hook is not None:
        for i in np.atleast_1d(np.asarray(idx, dtype=np.int64)):
            hook(core, int(i), rngs[int(i)])


class ShiftWrapper(gym.Wrapper):
    """The reset hook of shift ``name`` (of ``env_id``'s suite; default: the wrapped env's id)
    on a single env whose options the caller already shifted, e.g. with
    :func:`make_shifted_env`. Only AGV shifts have hooks; for the others this passes through.
    The observation returned by ``reset`` is taken after the hook, so it shows the shifted
    goal / clutter. The hook runs after the caller's reset options and wins over them:
    ``goal_shift`` moves a placed goal (or goal path) once more, ``clutter_far`` replaces
    placed obstacles."""

    def __init__(self, env: gym.Env, name: str, env_id: str | None = None) -> None:
        super().__init__(env)
        if env_id is None:
            env_id = env.spec.id if env.spec is not None else DEFAULT_ENV
        self.shift = get_shift(name, env_id)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self.shift.reset_hook is None:
            return obs, info
        base = self.env.unwrapped
        self.shift.reset_hook(base.core, 0, base.np_random)
        obs = base.sync_placement()  # the Bullet AGV also moves its bodies here
        return obs, {**info, "pose": base.core.poses()[0].copy()}


def make_shifted_env(env_id: str, name: str, seed: int = 0, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id)`` with shift ``name`` applied (options and reset hook)."""
    env = gym.make(env_id, **shifted_kwargs(name, kwargs, seed, env_id))
    return ShiftWrapper(env, name, env_id)


def _register_builtin() -> None:
    from rndx.envs import WAREHOUSE_IDS
    from rndx.envs.mujoco.push import ENV_ID as PUSH_ID

    # the 2D and the PyBullet AGV take the same AGVConfig options over the same core
    register_shifts("agv", WAREHOUSE_IDS, AGV_SHIFTS)
    register_shifts("mujoco_push", [PUSH_ID], _push_shifts())


_register_builtin()
SHIFTS = AGV_SHIFTS  # the AGV suite under its historical name
