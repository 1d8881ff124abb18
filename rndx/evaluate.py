"""Evaluate a trained run: ``python -m rndx.evaluate run=<dir> [episodes=N] [seed=S]``.

Reloads ``config.yaml`` and ``model.zip`` from the run dir, runs whole episodes on a fresh
VecEnv, prints a small table and writes ``<run>/eval_<seed>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rndx.agents import load_agent
from rndx.config import to_dict
from rndx.utils.checks import whole_number
from rndx.utils.cli import count, parse_key_values, to_bool
from rndx.utils.headless import use_headless_backends
from rndx.utils.io import atomic_write_json, short_reason
from rndx.utils.sde import resample_sde_noise

# rndx.envs (pygame, MuJoCo) is imported lazily, so this still runs before their first import.
use_headless_backends()

# SB3's evaluate_policy uses the same cap: more envs than this rarely speeds up evaluation.
_MAX_EVAL_ENVS = 8


def _episode_quotas(n_episodes: int, n_envs: int) -> np.ndarray:
    """Episodes each env must finish; spread evenly so short episodes are not over-counted.

    Counting the first n episodes finished across all envs would favour short episodes
    (SB3 evaluate_policy documents the same bias), so each env counts its own first k_i.
    """
    return np.array([(n_episodes + i) // n_envs for i in range(n_envs)], dtype=int)


def evaluate_policy_episodes(
    model: Any,
    env_id: str,
    n_episodes: int,
    seed: int,
    max_episode_steps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    deterministic: bool = True,
) -> dict[str, Any]:
    """Run ``n_episodes`` whole episodes of ``model`` (SB3's ``predict``) on a fresh VecEnv.

    :return: success_rate (None if the env never reports ``is_success``), mean_return,
        std_return, mean_length, episodes, seed.
    """
    from rndx.envs import make_sb3_vec_env

    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    n_envs = min(n_episodes, _MAX_EVAL_ENVS)
    env = make_sb3_vec_env(env_id, n_envs, seed, max_episode_steps, env_kwargs)
    quotas = _episode_quotas(n_episodes, n_envs)
    counts = np.zeros(n_envs, dtype=int)
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[bool | None] = []
    try:
        obs = env.reset()
        # as SB3's evaluate_policy: a policy with memory (the chunk policy's action queue)
        # learns from episode_start which envs just restarted
        starts = np.ones(n_envs, dtype=bool)
        while (counts < quotas).any():
            if not deterministic:  # gSDE: one noise draw per episode
                resample_sde_noise(model, n_envs, starts)
            actions, _ = model.predict(obs, episode_start=starts, deterministic=deterministic)
            obs, _, dones, infos = env.step(actions)
            starts = np.asarray(dones, dtype=bool)
            for i in np.flatnonzero(dones):
                if counts[i] >= quotas[i] or "episode" not in infos[i]:
                    continue
                counts[i] += 1
                returns.append(float(infos[i]["episode"]["r"]))
                lengths.append(int(infos[i]["episode"]["l"]))
                success = infos[i].get("is_success")
                successes.append(None if success is None else bool(success))
    finally:
        env.close()
    return _summary(returns, lengths, successes, seed)


def _summary(
    returns: list[float], lengths: list[int], successes: list[bool | None], seed: int
) -> dict[str, Any]:
    """Aggregate per-episode results into the eval.json record."""
    reported = [s for s in successes if s is not None]
    return {
        "success_rate": float(np.mean(reported)) if len(reported) == len(successes) else None,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "episodes": len(returns),
        "seed": int(seed),
    }


def eval_seed(cfg: DictConfig) -> int:
    """Default evaluation seed: ``eval.seed``, or seed + 1000 so eval differs from training."""
    explicit = cfg.get("eval", {}).get("seed")
    return int(explicit) if explicit is not None else int(cfg.seed) + 1000


_RUN_KEYS = ("env", "agent", "seed")  # what every config rndx.train writes has


def load_run_config(run_dir: str | Path) -> DictConfig:
    """Load ``<run_dir>/config.yaml``.

    :raises FileNotFoundError: if the run dir or its config.yaml is missing.
    :raises ValueError: if config.yaml is not YAML, or not a config with the keys a run's has.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(
            f"run dir {str(run)!r} does not exist (expected a folder "
            "written by rndx.train, with config.yaml and model.zip)"
        )
    path = run / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} not found: {str(run)!r} is not an rndx run dir")
    corrupt = f"{str(path)!r} is corrupt or not an rndx run config"
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax, bad interpolation, undecodable bytes
        raise ValueError(f"{corrupt} ({short_reason(exc)})") from None
    if not isinstance(cfg, DictConfig):
        got = f"a {type(cfg).__name__}"
    else:
        missing = [k for k in _RUN_KEYS if k not in cfg]
        if not missing:
            return cfg
        got = f"no {', '.join(missing)}"
    raise ValueError(f"{corrupt} ({got}; a run's config has {', '.join(_RUN_KEYS)})")


def load_model_file(algo: str, path: str | Path, device: str = "cpu") -> Any:
    """Load a run's saved model; a missing file says which file a run should have.

    :raises FileNotFoundError: if ``path`` is missing.
    :raises ValueError: if ``path`` is not a readable model archive (from :func:`load_agent`).
    """
    model_path = Path(path)
    if not model_path.is_file():
        raise FileNotFoundError(
            f"model file {str(model_path)!r} not found (expected the "
            "model.zip that rndx.train writes when training finishes)"
            + _checkpoint_hint(model_path.parent)
        )
    return load_agent(algo, model_path, device=device)


def _checkpoint_hint(run: Path) -> str:
    """For a run stopped before it finished: where its checkpoint is and how to finish it."""
    checkpoint = run / "checkpoints" / "latest.zip"
    if not checkpoint.is_file():
        return ""
    try:
        steps = json.loads((run / "checkpoints" / "latest.json").read_text())["num_timesteps"]
        at = f" ({int(steps)} env steps)"
    except (OSError, ValueError, KeyError, TypeError):
        at = ""
    return (
        f"; the run stopped before that: its last checkpoint is {str(checkpoint)!r}{at}, "
        f"finish training with: python -m rndx.train resume={run}"
    )


def evaluate_run(
    run_dir: str | Path,
    episodes: int | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
) -> dict[str, Any]:
    """Evaluate ``<run_dir>/model.zip`` and write ``<run_dir>/eval_<seed>.json``."""
    cfg = load_run_config(run_dir)
    model = load_model_file(str(cfg.agent.algo), Path(run_dir) / "model.zip")
    seed = eval_seed(cfg) if seed is None else seed
    result = evaluate_policy_episodes(
        model,
        str(cfg.env.id),
        int(cfg.eval.episodes if episodes is None else episodes),
        seed,
        cfg.env.get("max_episode_steps"),
        to_dict(cfg.env.get("kwargs")),
        bool(cfg.eval.deterministic if deterministic is None else deterministic),
    )
    atomic_write_json(Path(run_dir) / f"eval_{seed}.json", result)
    return result


def format_table(result: dict[str, Any]) -> str:
    """Render an eval result as a two-column text table."""
    width = max(len(k) for k in result)
    rows = []
    for key, value in result.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append(f"{key:<{width}}  {text}")
    return "\n".join(rows)


_CLI_KEYS = {"run": str, "episodes": count, "seed": int, "deterministic": to_bool}
_USAGE = "usage: python -m rndx.evaluate run=<dir> [episodes=N] [seed=S] [deterministic=true|false]"


def parse_cli(argv: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` arguments; unknown keys raise ValueError naming the valid ones, a
    seed outside [0, 2**32 - 1] one naming the range."""
    args = parse_key_values(argv, _CLI_KEYS)
    if "seed" in args:  # before any rollout (Gymnasium's own error comes as a traceback)
        whole_number("seed", args["seed"], 0, maximum=2**32 - 1)
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI entry: evaluate, print the table; errors print one line and return 2."""
    try:
        args = parse_cli(sys.argv[1:] if argv is None else argv)
        run = args.pop("run")
        result = evaluate_run(run, **args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}\n{_USAGE}", file=sys.stderr)
        return 2
    print(format_table(result))
    seed = result["seed"]
    print(f"wrote {Path(run) / f'eval_{seed}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
