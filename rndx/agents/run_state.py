"""What an SB3 checkpoint leaves out, for resumes that are sample-identical to an
uninterrupted run.

SB3's zip holds the model; a resume from it alone restarts the env's episodes and draws from
freshly seeded generators, so it trains on other samples than the run it continues would
have. :class:`RunState` is the rest, captured when a rollout starts (where rndx writes its
checkpoints) or when training ends: the env's state (every VecEnv layer's attributes: the
episodes under way, their step counts and random generators, VecMonitor's / Monitor's
episode counters), the last observation, SB3's episode statistics, the global torch / numpy
/ Python generators and the gSDE noise drawn for the rollout. :func:`restore_env` puts the
env part back before ``learn()``, :func:`restore_random` the generators at the resumed run's
first rollout start (after SB3's own draws there).

The env part needs an env whose state pickles: rndx's 2D AGV envs, the MuJoCo push task, the
PyBullet AGV (its physics state via ``saveBullet``) and most Gymnasium envs do; an env holding
a lock, a socket or a hardware handle does not. For such an env
:func:`capture` returns None and a resume is as before: reproducible, not sample-identical.
The state file is a pickle, as SB3's zip holds pickles: resume only run dirs you trust.
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
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

STATE_FILE = "latest_state.pkl"  # next to the checkpoint's latest.zip
_WRAPPER_OWN = ("venv", "class_attributes")  # a VecEnvWrapper's links, not its state


@dataclass
class RunState:
    """See the module docstring. ``noise`` is the gSDE exploration matrices drawn for the
    rollout that starts (None at the end of training, before they are drawn, or without
    gSDE)."""

    num_timesteps: int
    env: bytes
    env_kinds: list[str]
    last_obs: np.ndarray
    last_episode_starts: np.ndarray
    ep_info_buffer: list
    ep_success_buffer: list
    torch_rng: th.Tensor
    cuda_rng: list | None
    numpy_rng: tuple
    python_rng: tuple
    noise: tuple[th.Tensor, th.Tensor] | None


def _layers(env: VecEnv) -> list[VecEnv]:
    """The VecEnv wrappers from the outside in, then the VecEnv they wrap."""
    layers = [env]
    while isinstance(layers[-1], VecEnvWrapper):
        layers.append(layers[-1].venv)
    return layers


def _kinds(env: VecEnv) -> list[str]:
    return [type(layer).__qualname__ for layer in _layers(env)]


def env_state(env: VecEnv) -> bytes:
    """Every layer's class name and attributes, pickled (raises what pickle raises for an env
    whose state does not pickle)."""
    return pickle.dumps(
        [
            (
                type(layer).__qualname__,
                {k: v for k, v in vars(layer).items() if k not in _WRAPPER_OWN},
            )
            for layer in _layers(env)
        ]
    )


def why_not(env: VecEnv | None) -> str | None:
    """Why :func:`capture` cannot save this env's state, or None when it can."""
    if env is None:
        return "no env"
    try:
        env_state(env)
    except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError, ...
        return f"the env's state does not pickle ({type(exc).__name__}: {exc})"
    return None


def capture(model: BaseAlgorithm, noise_drawn: bool) -> RunState | None:
    """The model's run state now; ``noise_drawn``: the rollout's gSDE noise is drawn already
    (at a rollout start; not at the end of training). None for an env whose state does not
    pickle."""
    if model.env is None or model._last_obs is None:
        return None
    try:
        env = env_state(model.env)
    except Exception:  # see why_not: the resume says why
        return None
    noise = None
    if model.use_sde and noise_drawn:
        dist = model.policy.action_dist
        noise = (dist.exploration_mat.detach().clone(), dist.exploration_matrices.detach().clone())
    return RunState(
        num_timesteps=int(model.num_timesteps),
        env=env,
        env_kinds=_kinds(model.env),
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
    reason = why_not(model.env)
    if reason is not None:
        return None, reason
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
    if state.env_kinds != _kinds(model.env):
        return None, f"{str(path)!r} is from an env of layers {state.env_kinds}"
    if len(state.last_obs) != model.env.num_envs:
        return None, f"{str(path)!r} is from {len(state.last_obs)} envs, not {model.env.num_envs}"
    return state, ""


def restore_env(model: BaseAlgorithm, state: RunState) -> None:
    """Put the env (episodes under way, generators, episode counters), the last observation
    and SB3's episode statistics back, so ``learn(reset_num_timesteps=False)`` goes on from
    them instead of resetting the env. The env must be built as the saved one was (the
    resumed run's config)."""
    layers, saved = _layers(model.env), pickle.loads(state.env)
    if [kind for kind, _ in saved] != _kinds(model.env):
        raise ValueError(
            f"the run state's env layers {[kind for kind, _ in saved]} are not the resumed "
            f"run's {_kinds(model.env)}"
        )
    for layer, (_, attributes) in zip(layers, saved):
        layer.__dict__.update(attributes)
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
