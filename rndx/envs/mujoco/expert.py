"""A scripted expert for rndx/MujocoPush-v0 that reads only the observation.

Because it needs nothing but the observation, it drives any number of envs at once (one
batched numpy call on the stacked observations of a VecEnv) and records demonstrations
exactly as a policy would see them.

Strategy, per env, with u the unit vector from the block's centre to the goal:

* Get behind the block. While the pusher is not within ``align`` radians of the point
  behind the block (direction -u), it orbits the block on a circle of radius ``clear``
  (the block's corner radius + the pusher's radius + a margin) towards that point, taking
  the shorter way round, so it never knocks the block on the way.
* Push. Once behind, the pusher moves along u at ``push_speed`` while a proportional term
  pulls it back onto the line through the block's centre (pushing off-centre spins the block).
  As the block moves, u is recomputed, so a block that drifted is re-approached.

The expert ignores the obstacle (it is a distribution shift the policy never saw).
"""

from __future__ import annotations

import math

import numpy as np

from rndx.envs.mujoco.push import HALF, PUSHER_RADIUS

V_MAX = 0.25  # m/s, the pusher's velocity at action 1 (push.xml ctrlrange)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def push_expert(
    obs: np.ndarray,
    clear: float = HALF * math.sqrt(2) + PUSHER_RADIUS + 0.015,
    align: float = 0.3,
    push_speed: float = 0.2,
    gain: float = 10.0,
    lateral_gain: float = 12.0,
) -> np.ndarray:
    """Actions (n, 2) in [-1, 1] for observations (n, 16), or (2,) for one observation (16,).

    :param clear: orbit radius around the block centre (m).
    :param align: angular tolerance (rad) of "behind the block" before pushing.
    :param push_speed: pusher speed (m/s) along the push direction.
    :param gain: position gain (1/s) towards orbit waypoints.
    :param lateral_gain: gain (1/s) pulling the pusher onto the push line.
    """
    o = np.asarray(obs, dtype=np.float64)
    single = o.ndim == 1
    o = o.reshape(-1, o.shape[-1])
    p, b, g = o[:, 0:2], o[:, 4:6], o[:, 10:12]
    d = g - b
    u = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    rel = p - b
    phi = np.arctan2(rel[:, 1], rel[:, 0])
    behind = np.arctan2(-u[:, 1], -u[:, 0])
    err = _wrap(behind - phi)

    # orbit: a waypoint on the clear circle up to 0.6 rad further round, the shorter way
    step = np.clip(err, -0.6, 0.6)
    waypoint = b + clear * np.stack([np.cos(phi + step), np.sin(phi + step)], axis=1)
    v_orbit = gain * (waypoint - p)

    # push: along u, pulled onto the line through the block's centre
    lateral = np.sum(rel * n, axis=1)
    v_push = push_speed * u - lateral_gain * lateral[:, None] * n

    pushing = np.abs(err) < align
    v = np.where(pushing[:, None], v_push, v_orbit)
    speed = np.hypot(v[:, 0], v[:, 1])
    v *= np.minimum(1.0, V_MAX / np.maximum(speed, 1e-9))[:, None]
    a = np.clip(v / V_MAX, -1.0, 1.0).astype(np.float32)
    return a[0] if single else a
