"""Record demonstrations: ``python -m rndx.demos env=agv_warehouse episodes=N [run=<dir>] [out=F]
[seed=S] [noise=STD]``.

Rolls out the scripted expert (or, with ``run=<dir>``, a trained rndx agent) on a batched
VecEnv and writes one ``.npz`` (atomically) with every step of every episode:

    obs (N, *obs_shape) float32     the observation the action was taken in
    actions (N, *action_shape) f32  the action taken
    episode (N,) int64              episode index of each step (steps of an episode are contiguous)
    episode_start (N,) bool         True at the first step of each episode
    success (n_episodes,) bool      info["is_success"] at the episode's end
    lengths (n_episodes,) int64     steps per episode
    env_id, env_kwargs (JSON), max_episode_steps, source, seed, noise   metadata

Episodes are counted the way :func:`rndx.evaluate.evaluate_policy_episodes` counts them
(env i is seeded seed + i and contributes its own first k_i episodes), so a recording and an
evaluation with the same seed and episode count see the same start states.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rndx.utils.cli import help_text, wants_help
from rndx.utils.io import atomic_save

_MAX_ENVS = 8
PUSH_ID = (
    "rndx/MujocoPush-v0"  # as evaluate's _MAX_EVAL_ENVS: same episode split, same start states
)
_USAGE = (
    "usage: python -m rndx.demos env=<env> episodes=N [run=<dir>] [out=<file.npz>] [seed=S] "
    "[noise=STD]"
)


@dataclass
class Demos:
    """Recorded episodes; arrays as in the module docstring."""

    obs: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    success: np.ndarray
    env_id: str
    env_kwargs: dict[str, Any]
    max_episode_steps: int | None
    source: str = "expert"
    seed: int = 0
    noise: float = 0.0

    @property
    def n_episodes(self) -> int:
        return int(len(self.success))

    @property
    def lengths(self) -> np.ndarray:
        return np.bincount(self.episode, minlength=self.n_episodes).astype(np.int64)

    @property
    def episode_start(self) -> np.ndarray:
        start = np.ones(len(self.episode), dtype=bool)
        start[1:] = self.episode[1:] != self.episode[:-1]
        return start

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success)) if self.n_episodes else float("nan")

    def successful(self) -> Demos:
        """Only the successful episodes, re-indexed 0..k-1."""
        keep_ep = np.flatnonzero(self.success)
        keep = np.isin(self.episode, keep_ep)
        remap = np.full(self.n_episodes, -1, dtype=np.int64)
        remap[keep_ep] = np.arange(len(keep_ep))
        return Demos(
            self.obs[keep],
            self.actions[keep],
            remap[self.episode[keep]],
            self.success[keep_ep],
            self.env_id,
            self.env_kwargs,
            self.max_episode_steps,
            self.source,
            self.seed,
            self.noise,
        )

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` atomically; return its path (``.npz`` is appended to a path
        without it, as ``numpy.savez`` does; writing through a file object keeps numpy from
        appending it to the temporary file instead)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays = {
            "obs": self.obs.astype(np.float32),
            "actions": self.actions.astype(np.float32),
            "episode": self.episode.astype(np.int64),
            "episode_start": self.episode_start,
            "success": self.success.astype(bool),
            "lengths": self.lengths,
            "env_id": np.array(self.env_id),
            "env_kwargs": np.array(json.dumps(self.env_kwargs)),
            "max_episode_steps": np.array(
                -1 if self.max_episode_steps is None else self.max_episode_steps
            ),
            "source": np.array(self.source),
            "seed": np.array(self.seed),
            "noise": np.array(self.noise),
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        return atomic_save(write, path)


def record(
    env_id: str,
    episodes: int,
    seed: int = 0,
    max_episode_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    model: Any = None,
    deterministic: bool = True,
    noise: float = 0.0,
) -> Demos:
    """Roll out ``episodes`` whole episodes of the scripted expert (``model=None``) or of
    ``model`` (anything with SB3's ``predict``) and return them.

    :param noise: std of Gaussian noise added to the *executed* action (clipped to [-1, 1]);
        the *recorded* action stays the clean one. The demos then show how to recover from
        small drifts that a cloned policy makes (DART, Laskey et al. 2017).

    :raises ValueError: if ``episodes < 1`` or the expert is asked for an env it cannot
        drive (the AGV envs, the Bullet AGV and rndx/MujocoPush-v0 have scripted experts).
    """
    from rndx.envs import AGV_IDS, BULLET_AGV_ID, make_sb3_vec_env
    from rndx.evaluate import _episode_quotas

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    expert_ids = [*sorted(AGV_IDS), BULLET_AGV_ID, PUSH_ID]
    if model is None and env_id not in expert_ids:
        raise ValueError(
            f"the scripted experts drive {expert_ids} only, "
            f"not {env_id!r}; pass run=<dir> to record a trained agent"
        )
    n_envs = min(episodes, _MAX_ENVS)
    env = make_sb3_vec_env(env_id, n_envs, seed, max_episode_steps, env_kwargs)
    quotas = _episode_quotas(episodes, n_envs)
    counts = np.zeros(n_envs, dtype=int)
    # per env: the open episode's (obs, action) lists; finished episodes in env-major order
    open_obs: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
    open_act: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
    done_eps: list[list[tuple[np.ndarray, np.ndarray, bool]]] = [[] for _ in range(n_envs)]
    try:
        obs = env.reset()
        expert = None
        bullet_envs: list = []
        if model is None and env_id == PUSH_ID:
            from rndx.envs.mujoco.expert import push_expert  # reads only the observation
        elif model is None and env_id == BULLET_AGV_ID:
            # one single-vehicle core per PyBullet env (SB3's DummyVecEnv); the same planner
            bullet_envs = list(env.envs)
        elif model is None:
            from rndx.envs.experts import AGVExpert

            expert = AGVExpert(env.venv.core)  # VecMonitor(AGVSB3VecEnv): the batched core
        starts = np.ones(n_envs, dtype=bool)
        while (counts < quotas).any():
            if expert is not None:
                actions = expert.act().astype(np.float32)
            elif bullet_envs:
                from rndx.envs.experts import expert_actions

                actions = np.stack([expert_actions(e) for e in bullet_envs]).astype(np.float32)
            elif model is None:
                actions = push_expert(obs)
            else:
                actions, _ = model.predict(obs, episode_start=starts, deterministic=deterministic)
            for i in range(n_envs):
                open_obs[i].append(np.array(obs[i], dtype=np.float32))
                open_act[i].append(np.array(actions[i], dtype=np.float32))
            executed = actions
            if noise > 0:
                executed = np.clip(actions + rng.normal(0.0, noise, actions.shape), -1.0, 1.0)
            obs, _, dones, infos = env.step(executed.astype(np.float32))
            starts = np.asarray(dones, dtype=bool)
            for i in np.flatnonzero(dones):
                if counts[i] < quotas[i]:
                    counts[i] += 1
                    done_eps[i].append(
                        (
                            np.stack(open_obs[i]),
                            np.stack(open_act[i]),
                            bool(infos[i].get("is_success", False)),
                        )
                    )
                open_obs[i], open_act[i] = [], []
    finally:
        env.close()
    eps = [ep for per_env in done_eps for ep in per_env]
    return Demos(
        obs=np.concatenate([o for o, _, _ in eps]),
        actions=np.concatenate([a for _, a, _ in eps]),
        episode=np.concatenate(
            [np.full(len(o), k, dtype=np.int64) for k, (o, _, _) in enumerate(eps)]
        ),
        success=np.array([s for _, _, s in eps], dtype=bool),
        env_id=env_id,
        env_kwargs=dict(env_kwargs or {}),
        max_episode_steps=max_episode_steps,
        source="expert" if model is None else "model",
        seed=seed,
        noise=float(noise),
    )


def load_demos(
    path: str | Path,
    env_id: str | None = None,
    obs_shape: tuple[int, ...] | None = None,
    action_shape: tuple[int, ...] | None = None,
    successful_only: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> Demos:
    """Read a demos ``.npz`` and check it fits the env it will train for.

    :param env_id, obs_shape, action_shape: when given, the file must match them.
    :param successful_only: drop the episodes that did not succeed.
    :param env_kwargs: when given, the env options of the run; options the demos were
        recorded with that differ are named in a warning (:func:`check_env_kwargs`).
    :raises FileNotFoundError: if ``path`` is missing.
    :raises ValueError: if the file is unreadable, of another env or shape, or holds no
        (successful) episodes.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"demos file {str(p)!r} not found (record one with "
            "`python -m rndx.demos env=<env> episodes=N`)"
        )
    try:
        with np.load(p, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception:  # zipfile, pickle and format errors all mean the same thing here
        raise ValueError(
            f"{str(p)!r} is not an rndx demos file (a .npz written by `python -m rndx.demos`): "
            "it is corrupt or not a .npz"
        ) from None
    missing = {"obs", "actions", "episode", "success", "env_id"} - set(data)
    if missing:
        raise ValueError(
            f"demos file {str(p)!r} lacks {sorted(missing)}; record it with `python -m rndx.demos`"
        )
    steps = int(data["max_episode_steps"]) if "max_episode_steps" in data else -1
    demos = Demos(
        obs=data["obs"].astype(np.float32),
        actions=data["actions"].astype(np.float32),
        episode=data["episode"].astype(np.int64),
        success=data["success"].astype(bool),
        env_id=str(data["env_id"]),
        env_kwargs=json.loads(str(data["env_kwargs"])) if "env_kwargs" in data else {},
        max_episode_steps=None if steps < 0 else steps,
        source=str(data.get("source", "expert")),
        seed=int(data.get("seed", 0)),
        noise=float(data.get("noise", 0.0)),
    )
    if len(demos.obs) == 0 or demos.n_episodes == 0:
        raise ValueError(f"demos file {str(p)!r} is empty: it holds no episodes")
    if env_id is not None and demos.env_id != env_id:
        raise ValueError(
            f"demos file {str(p)!r} was recorded on {demos.env_id!r}, but training is on {env_id!r}"
        )
    if obs_shape is not None and demos.obs.shape[1:] != tuple(obs_shape):
        raise ValueError(
            f"demos file {str(p)!r} has observations of shape "
            f"{demos.obs.shape[1:]}, the env expects {tuple(obs_shape)}"
        )
    if action_shape is not None and demos.actions.shape[1:] != tuple(action_shape):
        raise ValueError(
            f"demos file {str(p)!r} has actions of shape "
            f"{demos.actions.shape[1:]}, the env expects {tuple(action_shape)}"
        )
    if env_kwargs is not None:
        check_env_kwargs(demos, env_kwargs, path=p)
    if successful_only:
        if not demos.success.any():
            raise ValueError(
                f"demos file {str(p)!r} has no successful episode out of "
                f"{demos.n_episodes} (train on all with bc.successful_only=false)"
            )
        demos = demos.successful()
    return demos


def _effective_kwargs(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` over the id's registered ones, over the defaults of its entry point's
    keyword arguments (and, for the warehouse ids, AGVConfig's), JSON-normalised, so equal
    settings written differently compare equal."""
    import gymnasium as gym

    from rndx.envs import WAREHOUSE_IDS

    merged: dict[str, Any] = {}
    if env_id in WAREHOUSE_IDS:  # the 2D and Bullet AGVs take AGVConfig's fields as kwargs
        from rndx.envs.agv.core import AGVConfig

        merged.update(AGVConfig().to_dict())
    if env_id in gym.registry:
        spec = gym.spec(env_id)
        merged.update(_signature_defaults(spec.entry_point))
        merged.update(spec.kwargs)
    merged.update(kwargs)
    return json.loads(json.dumps(merged, default=str))


def _signature_defaults(entry_point: Any) -> dict[str, Any]:
    """The keyword defaults of an env constructor (an entry point string or callable),
    without ``render_mode``; {} where it cannot be resolved."""
    import inspect

    from gymnasium.envs.registration import load_env_creator

    try:
        creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
        params = inspect.signature(creator).parameters.values()
    except Exception:  # an entry point that does not import is make()'s error, not ours
        return {}
    return {
        q.name: q.default
        for q in params
        if q.default is not inspect.Parameter.empty and q.name != "render_mode"
    }


def check_env_kwargs(
    demos: Demos | str | Path | None,
    env_kwargs: dict[str, Any] | None,
    env_id: str | None = None,
    path: str | Path | None = None,
    warn: bool = True,
) -> dict[str, tuple[Any, Any]]:
    """The env options that differ between the demos' recording and this run.

    :param demos: a :class:`Demos` or the path of a demos file (only its env id and options
        are read; None or a file that is missing or unreadable gives ``{}``:
        :func:`load_demos` reports those).
    :param env_kwargs: the run's env options (``cfg.env.kwargs``).
    :param env_id: the run's env id (default: the demos' one); a different id gives ``{}``
        (:func:`load_demos` rejects that file). Unset options count as the id's registered
        value or the env's default.
    :param warn: warn (``UserWarning``) naming each differing key with both values.
    :return: ``{key: (value recorded, value of this run)}``; a key set on one side only has
        the string ``"<unset>"`` on the other.
    """
    if demos is None:
        return {}
    if not isinstance(demos, Demos):
        path = demos
        try:
            with np.load(Path(demos), allow_pickle=False) as f:
                rec_id = str(f["env_id"])
                recorded = json.loads(str(f["env_kwargs"])) if "env_kwargs" in f.files else {}
        except Exception:  # load_demos raises the clear error for it
            return {}
    else:
        rec_id, recorded = demos.env_id, demos.env_kwargs
    if env_id is not None and env_id != rec_id:
        return {}  # another env altogether: load_demos rejects the file
    rec = _effective_kwargs(rec_id, dict(recorded or {}))
    run = _effective_kwargs(rec_id, dict(env_kwargs or {}))
    diff = {
        k: (rec.get(k, "<unset>"), run.get(k, "<unset>"))
        for k in sorted(set(rec) | set(run))
        if rec.get(k, "<unset>") != run.get(k, "<unset>")
    }
    if diff and warn:
        where = f"demos file {str(path)!r}" if path is not None else "the demos"
        items = "; ".join(f"{k}: {a!r} recorded, {b!r} in this run" for k, (a, b) in diff.items())
        warnings.warn(
            f"{where} was recorded with other env options than this run ({items}); the "
            "policy imitates behaviour on the recorded ones (record demos with this run's: "
            "`python -m rndx.demos env=<env> env.kwargs.<key>=<value>`)",
            UserWarning,
            stacklevel=2,
        )
    return diff


def default_out(env_name: str, source: str, episodes: int) -> Path:
    """``demos/<env name>__<source>__<episodes>.npz``."""
    return Path("demos") / f"{env_name}__{source}__{episodes}.npz"


def _help() -> str:
    """``--help``: usage, this docstring, the recipe's defaults and the env configs."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rndx.paths import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("demos")
    defaults = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "env"}
    envs = sorted(p.stem for p in (config_dir() / "env").glob("*.yaml"))
    keys = "\n".join(f"  {k}={'null' if v is None else v}" for k, v in defaults.items())
    return help_text(_USAGE, __doc__) + (
        f"\ndefaults (configs/demos.yaml):\n  env={cfg.env.name}\n{keys}\n\n"
        f"env configs: {', '.join(envs)}; any env.* key can be overridden too "
        "(env.kwargs.layout=hard)\n"
    )


def _check_run_env(run: str, run_env: Any, given_env: Any, overrides: list[str]) -> None:
    """``run=<dir>`` records on the run's env: env overrides that would change it are an error
    (they would otherwise be ignored).

    :raises ValueError: naming the run's env and the one asked for.
    """
    from rndx.config import to_dict

    asked = [o for o in overrides if o.lstrip("+~").split("=")[0].split(".")[0] == "env"]
    if not asked:
        return

    def describe(env: Any) -> str:
        return (
            f"{env.get('name')} ({env.get('id')}, kwargs {to_dict(env.get('kwargs')) or {}}, "
            f"max_episode_steps {env.get('max_episode_steps')})"
        )

    mine, given = describe(run_env), describe(given_env)
    if mine == given:
        return
    asked_text = " ".join(asked)
    raise ValueError(
        f"run={run!r} records on the env it was trained on, {mine}, but {asked_text} asks "
        f"for {given}; drop {asked_text}, or record the scripted expert on that env without "
        "run="
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry (Hydra compose of ``configs/demos.yaml``); errors print one line, return 2."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rndx.config import to_dict
    from rndx.evaluate import load_model_file, load_run_config
    from rndx.paths import config_dir
    from rndx.utils.headless import use_headless_backends

    use_headless_backends()
    overrides = sys.argv[1:] if argv is None else argv
    if wants_help(overrides):
        print(_help(), end="")
        return 0
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("demos", overrides=overrides)
        model, source = None, "expert"
        env_cfg = cfg.env
        if cfg.run is not None:
            run_cfg = load_run_config(cfg.run)
            _check_run_env(str(cfg.run), run_cfg.env, cfg.env, list(overrides))
            env_cfg = run_cfg.env
            model = load_model_file(str(run_cfg.agent.algo), Path(cfg.run) / "model.zip")
            source = str(run_cfg.agent.name)
        out = (
            Path(cfg.out)
            if cfg.out is not None
            else default_out(str(env_cfg.name), source, int(cfg.episodes))
        )
        demos = record(
            str(env_cfg.id),
            int(cfg.episodes),
            int(cfg.seed),
            env_cfg.get("max_episode_steps"),
            to_dict(env_cfg.get("kwargs")),
            model,
            noise=float(cfg.noise),
        )
        demos.source = source
        out = demos.save(out)
    except (FileNotFoundError, ValueError, HydraException, OmegaConfBaseException) as exc:
        print(f"error: {exc}\n{_USAGE}", file=sys.stderr)
        return 2
    print(
        f"recorded {demos.n_episodes} episodes ({len(demos.obs)} steps) of {source} on "
        f"{env_cfg.id}: success rate {demos.success_rate:.3f}\n  wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
