"""Batched rollouts of a policy on an env, under a named shift, kept whole.

rndx's AGV ids run on the batched core (one numpy step for the whole batch); any other
Gymnasium id (the MuJoCo push task, the PyBullet AGV) runs as a batch of single envs stepped
in lockstep, the policy predicting for the whole batch at once. Shift names are looked up in
the env's family suite (:func:`rndx.envs.shifts.shifts_for`).

The monitor only watches, it never changes what the policy does, so a rollout can be run
first and scored afterwards (in large batches) with exactly the result an online monitor
gives step by step. Each rollout keeps the observations the policy acted on and the env's own
outcome: success, or failure (collision or time-out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rndx.utils.sde import resample_sde_noise


@dataclass
class Rollout:
    """One episode: ``obs`` (T, obs_dim) the observations acted on; ``success`` the env's
    ``is_success`` at the end (False on collision or time-out)."""

    obs: np.ndarray
    success: bool
    collision: bool

    @property
    def length(self) -> int:
        return len(self.obs)


def run_rollouts(
    policy: Any,
    env_id: str,
    n_episodes: int,
    seed: int = 0,
    max_episode_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    shift: str = "nominal",
    deterministic: bool = False,
    batch: int = 50,
) -> list[Rollout]:
    """Roll out ``n_episodes`` episodes of ``policy`` (SB3's ``predict``; a chunk policy's
    queue is reset between batches) on ``env_id`` under ``shift``, ``batch`` at a time.

    Episode k uses vehicle seed ``seed + k`` (so two calls with the same arguments see the same
    start states, and different seeds different ones).
    """
    from rndx.envs import AGV_IDS, resolve_env_id
    from rndx.envs.shifts import get_shift

    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    env_id = resolve_env_id(env_id)
    get_shift(shift, env_id)  # an unknown name fails here, listing the env's known ones
    rollouts = _agv_rollouts if env_id in AGV_IDS else _gym_rollouts
    return rollouts(
        policy, env_id, n_episodes, seed, max_episode_steps, env_kwargs, shift, deterministic, batch
    )


def _lockstep(policy, obs: np.ndarray, steps: int, step_fn, deterministic: bool) -> list[Rollout]:
    """Run n episodes side by side from observations ``obs`` (n, obs_dim) for at most
    ``steps`` steps; ``step_fn(actions, active, t)`` advances the still-active ones and returns
    (next obs, done, success, collision) flags for all n (only the done ones are read)."""
    n = obs.shape[0]
    if hasattr(policy, "reset"):
        policy.reset()
    trace = np.zeros((steps, n, obs.shape[1]), dtype=np.float32)
    active = np.ones(n, dtype=bool)
    length = np.full(n, steps, dtype=np.int64)
    success = np.zeros(n, dtype=bool)
    collision = np.zeros(n, dtype=bool)
    starts = np.ones(n, dtype=bool)
    for t in range(steps):
        trace[t] = obs
        if not deterministic:  # a gSDE agent: one noise draw per episode
            resample_sde_noise(policy, n, starts)
        actions, _ = policy.predict(obs, episode_start=starts, deterministic=deterministic)
        starts[:] = False
        obs, done, succ, coll = step_fn(np.asarray(actions), active.copy(), t)
        done &= active
        success[done] = succ[done]
        collision[done] = coll[done]
        length[done] = t + 1
        active &= ~done
        if not active.any():
            break
    return [
        Rollout(trace[: length[i], i].copy(), bool(success[i]), bool(collision[i]))
        for i in range(n)
    ]


def _agv_rollouts(
    policy, env_id, n_episodes, seed, max_episode_steps, env_kwargs, shift, deterministic, batch
) -> list[Rollout]:
    from rndx.envs.agv.core import AGVConfig, AGVCore, validate_actions
    from rndx.envs.shifts import apply_reset_hook, shifted_kwargs

    spec = gym.spec(env_id)
    steps = int(max_episode_steps or spec.max_episode_steps)
    kwargs = shifted_kwargs(shift, {**spec.kwargs, **(env_kwargs or {})}, seed, env_id)
    cfg = AGVConfig.from_kwargs(**kwargs)
    out: list[Rollout] = []
    for start in range(0, n_episodes, batch):
        n = min(batch, n_episodes - start)
        core = AGVCore(n, cfg)
        core.seed([seed + start + k for k in range(n)])
        core.reset_envs(np.arange(n))
        apply_reset_hook(shift, core, np.arange(n), core.rngs, env_id)
        for i in range(n):  # a hook may have moved goals: refresh progress baselines
            core.prev_dist[i] = np.hypot(*(core.goal[i] - core.pos[i]))
        obs = core.observe()

        def step_core(actions: np.ndarray, active: np.ndarray, t: int, core=core, n=n):
            a = validate_actions(np.where(active[:, None], actions, 0.0), n)
            _, ev = core.step(a)
            done = active & (ev["success"] | ev["collision"])
            return core.observe(), done, ev["success"], ev["collision"]

        out += _lockstep(policy, obs, steps, step_core, deterministic)
    return out


def _gym_rollouts(
    policy, env_id, n_episodes, seed, max_episode_steps, env_kwargs, shift, deterministic, batch
) -> list[Rollout]:
    """Any Gymnasium id: ``batch`` single envs (built with the shifted keywords) stepped in
    lockstep; env k of the batch is reset with seed ``seed + start + k``. An episode ends on
    termination or truncation; success is the final ``info["is_success"]`` (or
    ``info["success"]``, Gymnasium-Robotics' key; an env with neither is an error), collision
    ``info["collision"]`` (False where the env reports none)."""
    from rndx.envs import flatten_dict_obs
    from rndx.envs.shifts import make_shifted_env

    steps = max_episode_steps or gym.spec(env_id).max_episode_steps
    if steps is None:
        raise ValueError(f"{env_id} has no max_episode_steps; pass max_episode_steps=")
    steps = int(steps)
    envs = [
        flatten_dict_obs(
            make_shifted_env(env_id, shift, seed, max_episode_steps=steps, **dict(env_kwargs or {}))
        )
        for _ in range(min(batch, n_episodes))
    ]
    out: list[Rollout] = []
    labelled: list[bool] = []  # whether each finished episode said if it succeeded
    try:
        for start in range(0, n_episodes, batch):
            n = min(batch, n_episodes - start)
            obs = np.stack([envs[k].reset(seed=seed + start + k)[0] for k in range(n)])
            obs = obs.astype(np.float32).reshape(n, -1)

            def step_envs(actions: np.ndarray, active: np.ndarray, t: int, obs=obs, n=n):
                done, success, collision = (np.zeros(n, dtype=bool) for _ in range(3))
                for k in np.flatnonzero(active):
                    o, _, term, trunc, info = envs[k].step(actions[k])
                    obs[k] = np.asarray(o, dtype=np.float32).reshape(-1)
                    if term or trunc or t + 1 == steps:
                        done[k] = True
                        flag = info.get("is_success", info.get("success"))
                        labelled.append(flag is not None)
                        success[k] = bool(flag)
                        collision[k] = bool(info.get("collision", False))
                return obs, done, success, collision

            out += _lockstep(policy, obs, steps, step_envs, deterministic)
            if not any(labelled):  # every rollout would count as a failure
                raise ValueError(
                    f"env {env_id!r} reports no success signal (info['is_success'] or "
                    "info['success'] at the end of an episode), and rollouts are labelled by "
                    "the env's own outcome: wrap the env to set info['is_success']"
                )
    finally:
        for env in envs:
            env.close()
    return out
