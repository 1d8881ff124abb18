"""What an SB3 checkpoint leaves out, for resumes that are sample-identical to an
uninterrupted run.

SB3's zip holds the model; a resume from it alone restarts the env's episodes and draws from
freshly seeded generators, so it trains on other samples than the run it continues would
have. :class:`RunState` is the rest, captured when a rollout starts (where rndx writes its
checkpoints) or when training ends: the env's state (episodes under way, their step counts
and random generators, VecMonitor's episode counters), the last observation, SB3's episode
statistics, the global torch / numpy / Python generators and the gSDE noise drawn for the
rollout. :func:`restore_env` puts the env part back before ``learn()``, :func:`restore_random`
the generators at the resumed run's first rollout start (after SB3's own draws there).

The env part is supported for rndx's batched 2D AGV envs (their state pickles); for other
envs (PyBullet, MuJoCo, user envs) :func:`capture` returns None and a resume is as before:
reproducible, not sample-identical. The state file is a pickle, as SB3's zip holds pickles:
resume only run dirs you trust.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

STATE_FILE = "latest_state.pkl"  # next to the checkpoint's latest.zip
_MONITOR_KEYS = ("episode_returns", "episode_lengths", "episode_count")


@dataclass
class RunState:
    """See the module docstring. ``noise`` is the gSDE exploration matrices drawn for the
    rollout that starts (None at the end of training, before they are drawn, or without
    gSDE)."""

    num_timesteps: int
    env: bytes
    last_obs: np.ndarray
    last_episode_starts: np.ndarray
    ep_info_buffer: list
    ep_success_buffer: list
    torch_rng: th.Tensor
    cuda_rng: list | None
    numpy_rng: tuple
    python_rng: tuple
    noise: tuple[th.Tensor, th.Tensor] | None


def _agv_env(env: VecEnv | None):
    """The batched AGV env under VecMonitor, or None for any other env."""
    from rndx.envs.agv.vector import AGVSB3VecEnv

    if isinstance(env, VecMonitor) and type(env.venv) is AGVSB3VecEnv:
        return env.venv
    return None


def supports(env: VecEnv | None) -> bool:
    """Whether :func:`capture` can save this env's state."""
    return _agv_env(env) is not None


def capture(model: BaseAlgorithm, noise_drawn: bool) -> RunState | None:
    """The model's run state now; ``noise_drawn``: the rollout's gSDE noise is drawn already
    (at a rollout start; not at the end of training). None for an env it cannot save."""
    inner = _agv_env(model.env)
    if inner is None or model._last_obs is None:
        return None
    monitor = {key: copy.deepcopy(getattr(model.env, key)) for key in _MONITOR_KEYS}
    noise = None
    if model.use_sde and noise_drawn:
        dist = model.policy.action_dist
        noise = (dist.exploration_mat.detach().clone(), dist.exploration_matrices.detach().clone())
    return RunState(
        num_timesteps=int(model.num_timesteps),
        env=pickle.dumps((vars(inner), monitor)),
        last_obs=np.array(model._last_obs, copy=True),
        last_episode_starts=np.array(model._last_episode_starts, copy=True),
        ep_info_buffer=copy.deepcopy(list(model.ep_info_buffer or [])),
        ep_success_buffer=list(model.ep_success_buffer or []),
        torch_rng=th.get_rng_state(),
        cuda_rng=th.cuda.get_rng_state_all() if th.cuda.is_initialized() else None,
        numpy_rng=np.random.get_state(),
        python_rng=random.getstate(),
        noise=noise,
    )


def save(state: RunState, path: Path) -> None:
    """Pickle ``state`` to ``path`` atomically."""
    from rndx.utils.io import atomic_save

    data = pickle.dumps(state)
    atomic_save(lambda tmp: tmp.write_bytes(data), path)


def load(path: Path, model: BaseAlgorithm) -> tuple[RunState | None, str]:
    """The run state saved with ``model``'s checkpoint, or None and why it cannot be used
    (missing, unreadable, or from another step than the checkpoint: a crash between the two
    writes)."""
    if not supports(model.env):
        return None, "the env's state is not saved with checkpoints (only the 2D AGV envs' is)"
    if not path.is_file():
        return None, f"{str(path)!r} not found (a checkpoint written before rndx saved it)"
    try:
        state = pickle.loads(path.read_bytes())
    except Exception as exc:  # a truncated or foreign file: fall back to a plain resume
        return None, f"{str(path)!r} is unreadable ({type(exc).__name__})"
    if not isinstance(state, RunState):
        return None, f"{str(path)!r} holds no run state"
    if state.num_timesteps != model.num_timesteps:
        return None, (
            f"{str(path)!r} is from step {state.num_timesteps}, the checkpoint from step "
            f"{model.num_timesteps}"
        )
    if len(state.last_obs) != model.env.num_envs:
        return None, f"{str(path)!r} is from {len(state.last_obs)} envs, not {model.env.num_envs}"
    return state, ""


def restore_env(model: BaseAlgorithm, state: RunState) -> None:
    """Put the env (episodes under way, generators, episode counters), the last observation
    and SB3's episode statistics back, so ``learn(reset_num_timesteps=False)`` goes on from
    them instead of resetting the env."""
    inner = _agv_env(model.env)
    assert inner is not None, "restore_env needs the env capture() saved"
    attributes, monitor = pickle.loads(state.env)
    inner.__dict__.update(attributes)
    for key, value in monitor.items():
        setattr(model.env, key, value)
    model._last_obs = np.array(state.last_obs, copy=True)
    model._last_episode_starts = np.array(state.last_episode_starts, copy=True)
    window = model._stats_window_size
    model.ep_info_buffer = deque(copy.deepcopy(state.ep_info_buffer), maxlen=window)
    model.ep_success_buffer = deque(state.ep_success_buffer, maxlen=window)


def restore_random(model: BaseAlgorithm, state: RunState) -> None:
    """Put the generators back at the resumed run's first rollout start, and the gSDE noise
    of that rollout: the saved matrices, or (state from the end of training) a fresh draw
    from the restored generator, as the uninterrupted run made it."""
    th.set_rng_state(state.torch_rng)
    if state.cuda_rng is not None and th.cuda.is_available():
        th.cuda.set_rng_state_all(state.cuda_rng)
    np.random.set_state(state.numpy_rng)
    random.setstate(state.python_rng)
    if not model.use_sde:
        return
    if state.noise is None:
        model.policy.reset_noise(model.env.num_envs)
        return
    dist = model.policy.action_dist
    mat, mats = (t.to(model.device) for t in state.noise)
    dist.exploration_mat, dist.exploration_matrices = mat, mats
