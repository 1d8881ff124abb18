"""Agent registry: maps a config's ``algo`` name to the class that builds and loads it.

An agent config names its class with ``algo: <name>``; the constructor arguments are the
shared PPO settings under ``ppo:`` plus, for intrinsic agents, the exploration settings under
``intrinsic:`` (so ``ppo``, ``ppo_rnd`` and ``ppo_rdd`` differ only in exploration).

``chunk_flow`` is not an SB3 algorithm: it learns from demonstrations, not from an env, so
:func:`build_agent` does not build it (``rndx.train`` calls
:func:`rndx.agents.chunk_flow.clone_from_config`); :func:`load_agent` loads it like the others.
"""

from __future__ import annotations

import inspect
import math
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from rndx.agents.chunk_flow import ChunkFlowPolicy
from rndx.agents.intrinsic_ppo import IntrinsicPPO
from rndx.config import to_dict
from rndx.intrinsic import IntrinsicImportError
from rndx.utils.checks import finite_number, whole_number

# Every class here has ``load(path, env=None, device=...)`` and SB3's ``predict``.
_ALGOS: dict[str, type[Any]] = {
    "ppo": PPO,
    "intrinsic_ppo": IntrinsicPPO,
    "chunk_flow": ChunkFlowPolicy,
}

# Algorithms trained from demonstrations (``demos=<file>``) instead of env interaction.
IMITATION_ALGOS = ("chunk_flow",)


# ``policy_kwargs.activation_fn`` by name: a YAML config cannot hold a torch class.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def resolve_policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return ``kwargs`` with ``policy_kwargs.activation_fn`` given by name (``relu``)
    replaced by its torch class; a class passes through.

    :raises ValueError: for a name not in :data:`ACTIVATIONS`; the message lists them.
    """
    policy_kwargs = kwargs.get("policy_kwargs")
    if not policy_kwargs or not isinstance(policy_kwargs.get("activation_fn"), str):
        return kwargs
    name = policy_kwargs["activation_fn"]
    if name.lower() not in ACTIVATIONS:
        raise ValueError(f"policy_kwargs.activation_fn={name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return {
        **kwargs,
        "policy_kwargs": {**policy_kwargs, "activation_fn": ACTIVATIONS[name.lower()]},
    }


def known_algos() -> list[str]:
    """Return the registered algorithm names, sorted."""
    return sorted(_ALGOS)


def algo_class(algo: str) -> type[Any]:
    """Return the class registered under ``algo``.

    :raises ValueError: if ``algo`` is not registered; the message lists the known names.
    """
    try:
        return _ALGOS[algo]
    except KeyError:
        raise ValueError(f"unknown algo {algo!r}; known: {', '.join(known_algos())}") from None


def policy_name(observation_space: gym.Space) -> str:
    """Return SB3's policy name for an observation space (Dict spaces need MultiInputPolicy).

    Plain PPO takes either; IntrinsicPPO takes only "MlpPolicy" on a Box space and rejects a
    Dict env with a hint to flatten it (``rndx.envs.make_sb3_vec_env`` flattens Dict spaces).
    """
    return "MultiInputPolicy" if isinstance(observation_space, gym.spaces.Dict) else "MlpPolicy"


def build_agent(
    cfg_agent: DictConfig,
    env: VecEnv,
    seed: int,
    device: str,
    tb_dir: str | Path | None,
) -> BaseAlgorithm:
    """Construct a fresh agent from its config node.

    :param cfg_agent: the ``agent`` config node: ``algo`` plus constructor kwargs under ``<algo>:``.
    :param env: the training VecEnv.
    :param seed: seed for the agent's RNGs.
    :param device: torch device string ("cpu", "cuda").
    :param tb_dir: TensorBoard log folder, or None for no TensorBoard.
    """
    algo = str(cfg_agent.algo)
    cls = algo_class(algo)
    if algo in IMITATION_ALGOS:
        raise ValueError(
            f"algo {algo!r} learns from demonstrations: train it with "
            "`python -m rndx.train agent=chunk_flow demos=<file>`"
        )
    kwargs: dict[str, Any] = resolve_policy_kwargs(to_dict(cfg_agent.get("ppo")) or {})
    check_ppo_settings(kwargs)
    _check_keys(cls, "agent.ppo", kwargs)
    if algo == "intrinsic_ppo":
        intrinsic = to_dict(cfg_agent.get("intrinsic")) or {}
        _check_keys(cls, "agent.intrinsic", intrinsic)
        kwargs.update(intrinsic)
    elif cfg_agent.get("intrinsic") is not None:
        raise ValueError(
            f"agent {cfg_agent.get('name')!r}: algo {algo!r} takes no 'intrinsic' "
            "settings; use algo: intrinsic_ppo"
        )
    return cls(
        policy_name(env.observation_space),
        env,
        seed=seed,
        device=device,
        tensorboard_log=None if tb_dir is None else str(tb_dir),
        verbose=0,
        **kwargs,
    )


# set by build_agent itself, not by the config
_BUILT_IN = ("self", "policy", "env", "seed", "device", "tensorboard_log", "verbose")


def constructor_keys(cls: type) -> list[str]:
    """The keyword arguments ``cls(...)`` takes: its ``__init__``'s and, through
    ``**kwargs``, its parents' (IntrinsicPPO's own plus PPO's), less those build_agent sets."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        keys |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return sorted(k for k in keys - set(_BUILT_IN) if not k.startswith("_"))


def _check_keys(cls: type, section: str, kwargs: dict[str, Any]) -> None:
    """ValueError naming ``section.key`` for a key the agent's constructor does not take (a
    key added with ``+`` on the command line reached it as an unexpected keyword)."""
    allowed = constructor_keys(cls)
    bad = sorted(set(kwargs) - set(allowed))
    if bad:
        raise ValueError(
            f"{', '.join(f'{section}.{key}' for key in bad)}: not a setting of {cls.__name__}; "
            f"allowed: {allowed}"
        )


# PPO's numeric settings and their ranges: SB3 takes any value here (a negative
# max_grad_norm flips the gradients; n_epochs 0 never updates), or fails deep inside torch
_PPO_RANGES: dict[str, tuple[str, float, float, bool]] = {
    # name: (kind, min, max, min excluded)
    "learning_rate": ("real", 0.0, math.inf, True),
    "n_steps": ("whole", 1, math.inf, False),
    "batch_size": ("whole", 2, math.inf, False),
    "n_epochs": ("whole", 1, math.inf, False),
    "gamma": ("real", 0.0, 1.0, False),
    "gae_lambda": ("real", 0.0, 1.0, False),
    "clip_range": ("real", 0.0, math.inf, True),
    "ent_coef": ("real", 0.0, math.inf, False),
    "vf_coef": ("real", 0.0, math.inf, False),
    "max_grad_norm": ("real", 0.0, math.inf, True),
}


def check_ppo_settings(kwargs: dict[str, Any], prefix: str = "agent.ppo.") -> None:
    """ValueError naming ``prefix + name``, the value and its range for a PPO setting out of
    range (a callable, SB3's schedule form, is left to SB3)."""
    for name, (kind, low, high, open_min) in _PPO_RANGES.items():
        value = kwargs.get(name)
        if value is None or callable(value):
            continue
        if kind == "whole":
            whole_number(prefix + name, value, int(low))
        else:
            finite_number(prefix + name, value, low, high, open_min=open_min)


def load_agent(
    algo: str, path: str | Path, env: VecEnv | None = None, device: str = "cpu"
) -> BaseAlgorithm | ChunkFlowPolicy:
    """Load a saved agent of kind ``algo`` from ``path`` (the file its ``save`` wrote).

    :param env: attach this env (needed to continue training); None for prediction only.
    :raises FileNotFoundError: if ``path`` is missing (SB3 would look for ``path.zip``).
    :raises ValueError: if ``path`` is not a readable ``algo`` checkpoint.
    """
    cls = algo_class(algo)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{algo} checkpoint {str(p)!r} not found")
    if cls is ChunkFlowPolicy:  # a torch file: its own load names what is wrong
        return cls.load(p, env=env, device=device)
    if not zipfile.is_zipfile(p):
        raise ValueError(
            f"{algo} checkpoint {str(p)!r} is corrupt: not a zip archive "
            "(expected the .zip that the agent's save writes)"
        )
    try:
        return cls.load(str(p), env=env, device=device)
    # SB3 asserts on a zip without its 'data' entry and raises ValueError on parameter names
    # that do not match; torch raises RuntimeError on bad tensors
    except (
        zipfile.BadZipFile, KeyError, EOFError, RuntimeError, OSError, AssertionError, ValueError
    ) as exc:  # fmt: skip
        if isinstance(exc, IntrinsicImportError):  # a sound checkpoint: its module is missing
            raise ValueError(f"{algo} checkpoint {str(p)!r}: {exc}") from exc
        reason = str(exc).removeprefix("Error: ") or type(exc).__name__
        raise ValueError(
            f"{algo} checkpoint {str(p)!r} is corrupt or not a saved {algo} agent: {reason}"
        ) from exc
