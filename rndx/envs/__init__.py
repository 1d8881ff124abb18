"""rndx's Gymnasium environments: registration in one place, and the factory train.py uses.

Importing :mod:`rndx` registers every id below, so ``gymnasium.make("rndx/AGVWarehouse-v0")``
works after ``import rndx``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

AGV_IDS = {
    # id: (default kwargs, max_episode_steps)
    "rndx/AGVWarehouse-v0": ({}, 500),
    "rndx/AGVWarehouseDynamic-v0": ({"n_agvs": 2, "n_pedestrians": 3}, 500),
    "rndx/AGVPickDrop-v0": ({"task": "pick_drop", "layout": "pick_drop"}, 800),
}


# Robot tasks with contact physics: id -> (entry point, max_episode_steps). The engine is
# imported when an env is built, with a DependencyNotInstalled error if it is missing.
BULLET_AGV_ID = "rndx/BulletAGVWarehouse-v0"
ROBOT_IDS = {
    BULLET_AGV_ID: ("rndx.envs.bullet.agv:BulletAGVWarehouseEnv", 500),
    "rndx/MujocoPush-v0": ("rndx.envs.mujoco.push:MujocoPushEnv", 200),
}


# the warehouse envs: an AGVCore behind each (batched in 2D, one vehicle in PyBullet), so the
# AGV shift suite, the scripted expert's planner and the novelty map apply to all of them
WAREHOUSE_IDS = (*AGV_IDS, BULLET_AGV_ID)


def register_envs() -> None:
    for env_id, (entry_point, steps) in ROBOT_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)
    for env_id, (kwargs, steps) in AGV_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="rndx.envs.agv.env:AGVWarehouseEnv",
            vector_entry_point="rndx.envs.agv.vector:AGVWarehouseVectorEnv",
            max_episode_steps=steps,
            kwargs=dict(kwargs),
        )


register_envs()


def make_sb3_vec_env(
    env_id: str,
    n_envs: int,
    seed: int,
    max_episode_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
):
    """A Stable-Baselines3 VecEnv (with VecMonitor episode statistics) for ``env_id``.

    rndx's AGV ids get the batched core directly (one numpy step for all ``n_envs``); any
    other Gymnasium id (the robot tasks, or a user's: ``"package:Id"`` imports ``package``
    first, see :func:`resolve_env_id`) is built with SB3's ``make_vec_env``, Dict
    observations flattened. Env i is seeded with seed + i.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecMonitor

    from rndx.envs.vec_checks import CheckedActions
    from rndx.utils.checks import whole_number

    n_envs = whole_number("n_envs", n_envs, 1)
    env_id = resolve_env_id(env_id)
    spec = gym.spec(env_id)
    steps = max_episode_steps if max_episode_steps is not None else spec.max_episode_steps
    if env_id in AGV_IDS:
        from rndx.envs.agv.vector import AGVSB3VecEnv

        kwargs = {**spec.kwargs, **(env_kwargs or {})}
        venv = AGVSB3VecEnv(n_envs, max_episode_steps=steps, **kwargs)
        venv.seed(seed)
        return VecMonitor(venv)
    make_kwargs: dict[str, Any] = dict(env_kwargs or {})
    if max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = max_episode_steps
    # make_vec_env wraps each env in SB3's Monitor already: the same episode statistics
    venv = make_vec_env(
        env_id, n_envs=n_envs, seed=seed, env_kwargs=make_kwargs, wrapper_class=flatten_dict_obs
    )
    return CheckedActions(venv)


def resolve_env_id(env_id: str) -> str:
    """The registered id for ``env_id``; ``"package:Id"`` imports ``package`` first (that is
    how a package such as gymnasium_robotics registers its ids).

    :raises ValueError: if the package is missing or the id is not registered; the message
        names the registered ids closest to it (Gymnasium's own, rndx's, any imported
        package's), lists rndx's ids and says how to name another package's.
    """
    import importlib

    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            hint = (
                "pip install 'rndx[bench]' (in a checkout pip install -e '.[bench]')"
                if module == "gymnasium_robotics"
                else "install the package that registers it, or for your own module put its "
                "folder on the Python path (PYTHONPATH; `python -m` adds the working directory)"
            )
            raise ValueError(
                f"env id {module + ':' + env_id!r}: cannot import {module!r} ({exc}); {hint}"
            ) from exc
    if env_id not in gym.registry:
        import difflib

        known = sorted(k for k in gym.registry if k.startswith("rndx/"))
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"unknown env id {env_id!r}; {hint}rndx ids: {known}; an id from another package "
            "is written 'package:Id' (e.g. gymnasium_robotics:PointMaze_UMaze-v3)"
        )
    return env_id


def flatten_dict_obs(env: gym.Env) -> gym.Env:
    """Dict observations (goal-conditioned envs such as PointMaze) as one flat vector, which
    the MLP policies and the intrinsic modules take."""
    if isinstance(env.observation_space, gym.spaces.Dict):
        return gym.wrappers.FlattenObservation(env)
    return env
