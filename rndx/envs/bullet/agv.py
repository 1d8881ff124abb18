"""rndx/BulletAGVWarehouse-v0: the AGV warehouse with a wheeled robot in PyBullet.

The 3D warehouse is built from the same layouts as the 2D env (``rndx.envs.agv.world``), and
the task bookkeeping is the 2D env's own: an :class:`~rndx.envs.agv.core.AGVCore` of one
vehicle samples starts and goals, moves the other AGVs and pedestrians, computes the reward
terms (:meth:`AGVCore.goal_step`) and the observation (:meth:`AGVCore.observe` with the
ranges of PyBullet's ray tests). Only motion, contact and sensing come from PyBullet, so an
agent or config moves between the two envs unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import tempfile
from collections.abc import Iterator
from numbers import Real
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rndx.envs.agv.core import AGVConfig, AGVCore, validate_actions
from rndx.envs.agv.env import step_info
from rndx.envs.deps import require
from rndx.utils.checks import MAX_FRAME, whole_number

ENV_ID = "rndx/BulletAGVWarehouse-v0"  # rndx.envs.BULLET_AGV_ID registers it
URDF = Path(__file__).resolve().parent / "assets" / "agv.urdf"
URDF_RADIUS = 0.3  # chassis radius in the URDF; scaled to the config's radius
WHEEL_RADIUS = 0.06  # in the URDF (scaled with it)
WHEEL_BASE = 0.4  # distance between the wheels in the URDF (scaled with it)
LIDAR_HEIGHT = 0.15  # chassis mid-height in the URDF (scaled with it)
WALL_HEIGHT, SHELF_HEIGHT, OBSTACLE_HEIGHT = 1.2, 1.0, 1.7

FLOOR_RGBA = (0.9, 0.9, 0.87, 1.0)
WALL_RGBA = (0.24, 0.24, 0.26, 1.0)
SHELF_RGBA = (0.64, 0.47, 0.28, 1.0)
GOAL_RGBA = (0.16, 0.67, 0.24, 0.8)
AGV_RGBA, PEDESTRIAN_RGBA = (0.94, 0.59, 0.12, 1.0), (0.59, 0.24, 0.67, 1.0)


@contextlib.contextmanager
def _bullet_file() -> Iterator[Path]:
    """A path in a fresh temporary folder, removed afterwards: PyBullet serialises its state
    to and from files only."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "state.bullet"


class DirectClient:
    """PyBullet's functions bound to one new ``p.DIRECT`` physics server, as
    ``pybullet_utils.bullet_client.BulletClient`` binds them; that class connects with an
    options string, which makes PyBullet print ``argv[0]=`` for every env made."""

    def __init__(self, p: Any) -> None:
        self._p, self._pid = p, os.getpid()
        self._id = p.connect(p.DIRECT)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._p, name)
        return (
            functools.partial(attr, physicsClientId=self._id) if inspect.isbuiltin(attr) else attr
        )

    def disconnect(self) -> None:
        if self._id >= 0:
            self._p.disconnect(physicsClientId=self._id)
            self._id = -1

    def __del__(self) -> None:  # an env never closed: free its server (not a fork's copy)
        if getattr(self, "_id", -1) >= 0 and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self.disconnect()


class BulletAGVWarehouseEnv(gym.Env):
    """A differential-drive AGV drives through a 3D warehouse to a goal, with contact physics.

    ## Description
    The warehouse of ``rndx/AGVWarehouse-v0`` (same layouts, same start and goal regions,
    same optional AGVs and pedestrians) built from boxes in PyBullet (``p.DIRECT``, no
    window). The robot (``assets/agv.urdf``: a cylinder chassis of the config's ``radius``,
    two driven wheels and two casters) is driven by wheel velocity motors; a 360° lidar is
    one batched ray test (``rayTestBatch``) at chassis height.

    ## Action Space
    ``Box(-1, 1, (2,), float32)`` as in the 2D env: linear and angular velocity commands as
    fractions of ``v_max`` and ``w_max``, rate-limited by ``a_max`` and ``alpha_max``, then
    turned into left/right wheel speeds. Out-of-range values are clipped; a wrong shape,
    NaN or inf raises ``ValueError``.

    ## Observation Space
    The 2D env's: lidar ranges / ``lidar_range``, goal distance / layout diagonal, goal
    bearing (cos, sin), v / v_max and w / w_max *measured* from the chassis velocity (clipped
    to [-1, 1]) [, carrying flag]. ``info["pose"]`` = (x, y, cos, sin).

    ## Reward
    The 2D env's options and terms (``sparse`` | ``dense``, ``goal_reward``,
    ``collision_penalty``, ``pick_reward``, ``progress_coef``), computed by the same code.
    A collision is a contact between the robot and a wall, shelf, AGV or pedestrian.

    ## Starting State, Episode End
    As the 2D env (``reset(options={"start": ..., "goal": ..., "obstacles": ...})``
    places them, with the same checks); terminated on success or collision; ``TimeLimit``
    truncates (500 steps).

    ## Arguments
    ``render_mode`` (None | ``"rgb_array"``: PyBullet's TinyRenderer, no display needed),
    ``width``/``height`` of frames, ``time_step`` (physics step, s; the control step is
    ``dt``), and every field of :class:`~rndx.envs.agv.core.AGVConfig`.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        render_mode: str | None = None,
        width: int = 320,
        height: int = 240,
        time_step: float = 1.0 / 120.0,
        **kwargs: Any,
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; allowed: None, 'rgb_array'")
        width = whole_number("width", width, 1, maximum=MAX_FRAME)
        height = whole_number("height", height, 1, maximum=MAX_FRAME)
        self.p = require("pybullet", ENV_ID)
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        self.config = AGVConfig.from_kwargs(**kwargs)
        if self.config.action_repeat != 1:
            raise ValueError(
                f"action_repeat={self.config.action_repeat!r}: the Bullet AGV steps its physics "
                "once per command; allowed: 1"
            )
        if self.config.collision != "terminate":
            raise ValueError(
                f"collision={self.config.collision!r}: a contact in the Bullet AGV ends the "
                "episode; allowed: 'terminate'"
            )
        cfg = self.config
        ratio = cfg.dt / float(time_step) if isinstance(time_step, Real) and time_step > 0 else 0.0
        if not (
            math.isfinite(ratio) and ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) <= 1e-6 * ratio
        ):
            raise ValueError(
                f"time_step={time_step!r} must be in (0, dt={cfg.dt!r}] with dt a whole multiple "
                "of it (the physics steps dt / time_step times per command)"
            )
        self.core = AGVCore(1, cfg, track_env=0 if render_mode else -1)
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / cfg.dt))}
        low, high = self.core.observation_bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

        self.substeps = int(round(ratio))  # >= 1, checked above
        self.scale = cfg.radius / URDF_RADIUS
        self.client = DirectClient(self.p)
        self._build()
        self._cmd = np.zeros(2)  # rate-limited (v, w) commands
        nb = cfg.n_beams
        self._ray_dirs = np.zeros((nb, 3))
        self._lidar_start = 1.02 * cfg.radius  # rays start just outside the chassis

    # ------------------------------------------------------------------ world
    def _box(self, x0: float, y0: float, x1: float, y1: float, h: float, rgba) -> int:
        c, p = self.client, self.p
        half = [(x1 - x0) / 2, (y1 - y0) / 2, h / 2]
        col = c.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        vis = c.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba)
        return c.createMultiBody(0, col, vis, [(x0 + x1) / 2, (y0 + y1) / 2, h / 2])

    def _build(self) -> None:
        """The static warehouse, the obstacle bodies and the goal marker (once per env)."""
        c, p, core = self.client, self.p, self.core
        c.setGravity(0, 0, -9.81)
        c.setTimeStep(self.config.dt / self.substeps)
        world = core.world
        w, h = world.size
        half = [w / 2 + 1.0, h / 2 + 1.0, 0.05]
        col = c.createCollisionShape(p.GEOM_BOX, halfExtents=half)
        vis = c.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=FLOOR_RGBA)
        self.floor = c.createMultiBody(0, col, vis, [w / 2, h / 2, -0.05])
        self.static = [
            self._box(
                *b, SHELF_HEIGHT if shelf else WALL_HEIGHT, SHELF_RGBA if shelf else WALL_RGBA
            )
            for b, shelf in zip(world.boxes[:-1], world.is_shelf[:-1])
        ]
        self.obstacles = []
        for j in range(core.m):
            r = float(core.obs_radius[j])
            rgba = AGV_RGBA if j < core.cfg.n_agvs else PEDESTRIAN_RGBA
            col = c.createCollisionShape(p.GEOM_CYLINDER, radius=r, height=OBSTACLE_HEIGHT)
            vis = c.createVisualShape(
                p.GEOM_CYLINDER, radius=r, length=OBSTACLE_HEIGHT, rgbaColor=rgba
            )
            self.obstacles.append(c.createMultiBody(0, col, vis, [-5.0 - 2 * j, -5.0, 0.85]))
        gvis = c.createVisualShape(
            p.GEOM_CYLINDER, radius=self.config.goal_radius, length=0.01, rgbaColor=GOAL_RGBA
        )
        self.goal_marker = c.createMultiBody(0, -1, gvis, [0, 0, 0.005])
        self._others = set(self.static) | set(self.obstacles)
        self.robot = -1  # loaded by the first reset
        # Sort overlapping pairs and contact manifolds by body id every step, so the solver's
        # order (hence its rounding) does not depend on the pairs earlier episodes made.
        c.setPhysicsEngineParameter(deterministicOverlappingPairs=1)

    def _spawn_robot(self, x: float, y: float, yaw: float) -> None:
        """The robot at (x, y, yaw), standing still, as if freshly loaded. It is loaded once
        (every loadURDF + removeBody keeps ~11 KB in PyBullet); each reset, the first one too,
        re-poses it the same way: base pose and velocity, joint angles and speeds, wheel
        motors, and its contact state (:meth:`_drop_contacts`). With the pair order sorted
        (see _build), same seed + same actions give bit-identical episodes whatever ran
        before."""
        c, p = self.client, self.p
        if self.robot < 0:
            self._load_robot([x, y, 0.002])
        c.resetBasePositionAndOrientation(
            self.robot, [x, y, self._com_height], c.getQuaternionFromEuler([0, 0, yaw])
        )
        c.resetBaseVelocity(self.robot, [0, 0, 0], [0, 0, 0])
        for j in self._links[1:]:
            c.resetJointState(self.robot, j, targetValue=0.0, targetVelocity=0.0)
        c.setJointMotorControlArray(
            self.robot, self.wheels, p.VELOCITY_CONTROL, targetVelocities=[0.0, 0.0], forces=[0, 0]
        )
        self._drop_contacts()

    def _load_robot(self, position: list[float]) -> None:
        c = self.client
        self.robot = c.loadURDF(str(URDF), position, globalScaling=self.scale)
        n = c.getNumJoints(self.robot)
        joints = {c.getJointInfo(self.robot, i)[1].decode(): i for i in range(n)}
        self.wheels = [joints["left_wheel_joint"], joints["right_wheel_joint"]]
        for j in self.wheels:
            c.changeDynamics(self.robot, j, lateralFriction=1.0)
        for name in ("front_caster_joint", "rear_caster_joint"):
            c.changeDynamics(self.robot, joints[name], lateralFriction=0.0, rollingFriction=0.0)
        (ox, oy, oz), orn = c.getDynamicsInfo(self.robot, -1)[3:5]
        if (ox, oy) != (0.0, 0.0) or tuple(orn) != (0.0, 0.0, 0.0, 1.0):
            raise RuntimeError(
                f"{URDF.name}: the base's inertial frame must sit straight above its origin"
            )
        # resetBasePositionAndOrientation places the inertial frame, not the link origin
        # that loadURDF places (in Python floats: multiplyTransforms rounds to float32)
        self._com_height = 0.002 + oz
        self._links = list(range(-1, n))  # -1: the base
        self._contact_drops = 0

    def _drop_contacts(self) -> None:
        """Re-set each link's collision filter (group 1, mask all: what loadURDF gives a
        dynamic link). This takes its colliders out of the broadphase and back, which drops
        their overlapping pairs, contact manifolds and warm-start impulses, and gives them new
        broadphase ids (a counter): :meth:`__setstate__` repeats it as often to match a
        snapshot's ids, and with them its contact manifolds and pair order."""
        for link in self._links:
            self.client.setCollisionFilterGroupMask(self.robot, link, 1, -1)
        self._contact_drops += 1

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the pybullet module and its physics client, plus the physics
        state as PyBullet serialises it (``saveBullet``: poses, velocities, joint states,
        contact manifolds): a pickled env goes on bit for bit (sample-identical resumes)."""
        self._check_open()
        state = self.__dict__.copy()
        del state["p"], state["client"]
        with _bullet_file() as path:
            self.client.saveBullet(str(path))
            state["_physics"] = path.read_bytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A new physics server built as the pickled env's was (same body ids, same
        broadphase ids), with the pickled physics state restored into it."""
        physics, robot = state.pop("_physics"), state["robot"]
        self.__dict__.update(state)
        self.p = require("pybullet", ENV_ID)
        self.client = DirectClient(self.p)
        self._build()
        if robot < 0:  # pickled before its first reset: nothing simulated yet
            return
        self._load_robot([-5.0, -5.0, 0.002])  # placed by the restore
        while self._contact_drops < state["_contact_drops"]:
            self._drop_contacts()
        if self.robot != robot:
            raise RuntimeError(f"the restored robot is body {self.robot}, the pickled one {robot}")
        with _bullet_file() as path:
            path.write_bytes(physics)
            self.client.restoreState(fileName=str(path))

    # ------------------------------------------------------------------ gym API
    def _check_open(self) -> None:
        if self.client is None:
            raise RuntimeError(f"the {ENV_ID} env is closed; make a new one")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._check_open()
        super().reset(seed=seed)
        core = self.core
        core.rngs = [self.np_random]  # all randomness from the env's own generator
        core.reset_envs(np.array([0]))
        if options is not None:  # checked even when falsy: options=[] is an error
            core.place(0, options)
        self._spawn_robot(*core.pos[0], core.theta[0])
        self._cmd[:] = 0.0
        return self.sync_placement(), {"pose": core.poses()[0].copy()}

    def sync_placement(self) -> np.ndarray:
        """Move the obstacle bodies and the goal marker to where the core has them, and return
        the observation (a fresh ray test). Called by ``reset`` and by code that edits the
        freshly reset core's goal or obstacles (the shifts' reset hooks,
        :class:`rndx.envs.shifts.ShiftWrapper`); the robot's pose is not moved."""
        self._check_open()
        self._move_obstacles()
        self._move_goal()
        return self._observe()

    def step(self, action):
        self._check_open()
        a = validate_actions(action, 1, single=True)[0]
        core, cfg, c = self.core, self.config, self.client
        target = np.clip(
            a * np.array([cfg.v_max, cfg.w_max]) * cfg.actuator_gain,
            [-cfg.v_max, -cfg.w_max],
            [cfg.v_max, cfg.w_max],
        )
        step_max = np.array([cfg.a_max, cfg.alpha_max]) * cfg.dt
        self._cmd += np.clip(target - self._cmd, -step_max, step_max)
        v, w = self._cmd
        half_base = 0.5 * WHEEL_BASE * self.scale
        r = WHEEL_RADIUS * self.scale
        c.setJointMotorControlArray(
            self.robot,
            self.wheels,
            self.p.VELOCITY_CONTROL,
            targetVelocities=[(v - w * half_base) / r, (v + w * half_base) / r],
            forces=[40.0 * self.scale**3] * 2,
        )
        core.advance_obstacles()
        self._move_obstacles()
        if cfg.goal_speed > 0:  # the goal moves along its aisle: so does its marker
            self._move_goal()
        collision = False
        for _ in range(self.substeps):
            c.stepSimulation()
            if not collision:
                collision = any(
                    cp[2] in self._others for cp in c.getContactPoints(bodyA=self.robot)
                )
        core.steps += 1
        self._read_pose()
        wdt, hgt = core.world.size
        x, y = core.pos[0]
        collision = collision or not (0.0 <= x <= wdt and 0.0 <= y <= hgt)
        reward, events = core.goal_step(np.array([collision]))
        if events["picked"][0]:
            self._move_goal()
        obs = self._observe()
        terminated = bool(core.terminal(events)[0])
        info = step_info(core, events, 0)
        info["is_success"] = bool(info["is_success"])
        info["collision"] = bool(info["collision"])
        return obs, float(reward[0]), terminated, False, info

    # ------------------------------------------------------------------ state, sensing
    def _read_pose(self) -> None:
        c, core = self.client, self.core
        pos, orn = c.getBasePositionAndOrientation(self.robot)
        lin, ang = c.getBaseVelocity(self.robot)
        yaw = c.getEulerFromQuaternion(orn)[2]
        core.pos[0] = pos[:2]
        core.theta[0] = yaw
        core.v[0] = lin[0] * math.cos(yaw) + lin[1] * math.sin(yaw)
        core.w[0] = ang[2]

    def _move_obstacles(self) -> None:
        for j, body in enumerate(self.obstacles):
            x, y = self.core.obs_pos[0, j]
            self.client.resetBasePositionAndOrientation(
                body, [x, y, OBSTACLE_HEIGHT / 2], [0, 0, 0, 1]
            )

    def _move_goal(self) -> None:
        x, y = self.core.goal[0]
        self.client.resetBasePositionAndOrientation(self.goal_marker, [x, y, 0.005], [0, 0, 0, 1])

    def lidar(self) -> np.ndarray:
        """Ranges (beams,) in metres from the robot's centre: one ``rayTestBatch`` from just
        outside the chassis to ``lidar_range``, at chassis mid-height."""
        core, cfg = self.core, self.config
        x, y = core.pos[0]
        ang = core.theta[0] + core.beam_offsets
        d = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        z = LIDAR_HEIGHT * self.scale
        r0 = self._lidar_start
        start = np.column_stack([x + r0 * d[:, 0], y + r0 * d[:, 1], np.full(len(ang), z)])
        end = np.column_stack(
            [x + cfg.lidar_range * d[:, 0], y + cfg.lidar_range * d[:, 1], np.full(len(ang), z)]
        )
        hits = self.client.rayTestBatch(start.tolist(), end.tolist())
        frac = np.array([h[2] if h[0] >= 0 else 1.0 for h in hits])
        return r0 + frac * (cfg.lidar_range - r0)

    def _observe(self) -> np.ndarray:
        obs = self.core.observe(ranges=self.lidar()[None])[0]
        return np.clip(obs, self.observation_space.low, self.observation_space.high)

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        self._check_open()
        c, p = self.client, self.p
        w, h = self.core.world.size
        view = c.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=[w / 2, h / 2, 0.0],
            distance=0.85 * max(w, h),
            yaw=0.0,
            pitch=-65.0,
            roll=0.0,
            upAxisIndex=2,
        )
        proj = c.computeProjectionMatrixFOV(
            fov=60.0, aspect=self.width / self.height, nearVal=0.1, farVal=100.0
        )
        _, _, rgba, _, _ = c.getCameraImage(
            self.width, self.height, view, proj, renderer=p.ER_TINY_RENDERER
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3].copy()

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            with contextlib.suppress(Exception):  # already disconnected (interpreter shutdown)
                self.client.disconnect()
            self.client = None
