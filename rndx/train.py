"""Train an agent: ``python -m rndx.train [env=...] [agent=...] [experiment=...] [key=value ...]``.

Thin by design: compose the config, build env and agent, learn with checkpoints, save, evaluate.
Continue a run with ``python -m rndx.train resume=<run dir> [total_timesteps=N]``.
Imitation agents learn from a demos file instead of the env:
``python -m rndx.train agent=chunk_flow demos=<file.npz>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed

from rndx.agents import IMITATION_ALGOS, build_agent, load_agent
from rndx.config import to_dict
from rndx.evaluate import eval_seed, evaluate_policy_episodes, load_run_config
from rndx.paths import config_dir
from rndx.record import after_training
from rndx.utils.checks import whole_number
from rndx.utils.headless import use_headless_backends
from rndx.utils.io import atomic_save, atomic_write_json, atomic_write_text
from rndx.viz.novelty import VISITATION_FILE, VisitationCounter

if TYPE_CHECKING:
    from rndx.agents.chunk_flow import ChunkFlowPolicy

# rndx.envs (pygame, MuJoCo) is imported lazily, so this still runs before their first import.
use_headless_backends()

# Keys a resumed run may change; anything else (env, agent, seed, n_envs) would make the
# checkpoint and the config disagree.
RESUMABLE_KEYS = (
    "total_timesteps",
    "progress_bar",
    "device",
    "checkpoint_every",
    "eval",
    "video",
)


class LatestCheckpoint(BaseCallback):
    """Every ``every`` env steps (and at the end) write ``latest.zip`` and ``latest.json``."""

    def __init__(self, checkpoint_dir: Path, every: int) -> None:
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.every = every
        self._next_save = every

    def _on_training_start(self) -> None:
        # A resumed model starts at its saved num_timesteps, not 0.
        self._next_save = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_save:
            self.save()
            self._next_save = (self.num_timesteps // self.every + 1) * self.every
        return True

    def _on_training_end(self) -> None:
        self.save()

    def save(self) -> None:
        """Write the model and its step count atomically (a crash keeps the previous pair)."""
        atomic_save(self.model.save, self.checkpoint_dir / "latest.zip")
        atomic_write_json(
            self.checkpoint_dir / "latest.json",
            {"num_timesteps": int(self.num_timesteps), "path": "latest.zip"},
        )


def resolve_device(device: str) -> str:
    """Map ``auto`` to cuda when a GPU is visible, else cpu; check any other torch device name.

    The policy and the intrinsic module live on this device; the batched env stays on the CPU
    (numpy + numba), so a GPU only pays off with many envs per step (``experiment=gpu``).

    :raises ValueError: if ``device`` is neither ``auto`` nor a torch device name.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"unknown device {device!r}; use auto, cpu, cuda or cuda:<index>"
        ) from None
    return device


def resolve_run_dir(cfg: DictConfig) -> Path:
    """The run dir: ``resume``, else ``run_dir``, else Hydra's run dir, else a fresh name."""
    if cfg.resume is not None:
        return Path(cfg.resume)
    if cfg.run_dir is not None:
        return Path(cfg.run_dir)
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env.name}__{cfg.agent.name}__{cfg.seed}__{stamp}"


def resume_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load a run's saved config for resuming, applying ``key=value`` overrides.

    :param overrides: command-line overrides; only keys under RESUMABLE_KEYS are allowed.
    :raises FileNotFoundError: if the run dir or its config.yaml is missing.
    :raises ValueError: on an override outside RESUMABLE_KEYS.
    """
    cfg = load_run_config(run_dir)
    for item in overrides:
        key = item.partition("=")[0].lstrip("+")
        if key.split(".")[0] not in RESUMABLE_KEYS:
            raise ValueError(
                f"cannot change {key!r} when resuming; allowed: {', '.join(RESUMABLE_KEYS)}"
            )
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    cfg.resume = str(run_dir)
    cfg.run_dir = str(run_dir)
    OmegaConf.set_struct(cfg, True)
    return cfg


def _make_or_load_agent(cfg: DictConfig, env, run_dir: Path, device: str) -> BaseAlgorithm:
    """A fresh agent, or the resumed run's latest checkpoint attached to ``env``."""
    tb_dir = run_dir / "tb"
    if cfg.resume is None:
        return build_agent(cfg.agent, env, int(cfg.seed), device, tb_dir)
    checkpoint = run_dir / "checkpoints" / "latest.zip"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: {str(checkpoint)!r} not found")
    model = load_agent(str(cfg.agent.algo), checkpoint, env=env, device=device)
    model.tensorboard_log = str(tb_dir)  # same TB folder even if the run dir was moved
    return model


def _clone(cfg: DictConfig, env, run_dir: Path, device: str) -> ChunkFlowPolicy:
    """Behaviour cloning from ``cfg.demos`` (the env only supplies the spaces to check)."""
    from rndx.agents.chunk_flow import clone_from_config

    if cfg.resume is not None:
        raise ValueError(f"agent {cfg.agent.name!r} cannot be resumed: train it again")
    return clone_from_config(
        cfg.agent,
        cfg.demos,
        str(cfg.env.id),
        env.observation_space,
        env.action_space,
        int(cfg.seed),
        device,
        run_dir / "tb" / f"{cfg.agent.name}_1",
    )


def check_counts(cfg: DictConfig) -> None:
    """Fail before anything is written when a count of the run is not a positive integer.

    :raises ValueError: naming the key and its value.
    """
    for key in ("total_timesteps", "n_envs", "checkpoint_every"):
        whole_number(key, cfg.get(key), 1)


def train(cfg: DictConfig) -> Path:
    """Train, checkpoint, save and evaluate one run described by ``cfg``; return its run dir."""
    from rndx.envs import make_sb3_vec_env

    check_counts(cfg)
    device = resolve_device(str(cfg.device))  # a bad count or device fails before any write
    run_dir = resolve_run_dir(cfg)
    cfg = OmegaConf.create(to_dict(cfg))  # resolved copy: the caller's config stays untouched
    cfg.run_dir = str(run_dir)
    OmegaConf.set_struct(cfg, True)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))

    set_random_seed(int(cfg.seed))
    env_kwargs = to_dict(cfg.env.get("kwargs"))
    env = make_sb3_vec_env(
        str(cfg.env.id), int(cfg.n_envs), int(cfg.seed), cfg.env.max_episode_steps, env_kwargs
    )
    try:
        if str(cfg.agent.algo) in IMITATION_ALGOS:
            model = _clone(cfg, env, run_dir, device)
        else:
            model = _make_or_load_agent(cfg, env, run_dir, device)
            remaining = int(cfg.total_timesteps) - model.num_timesteps
            if remaining > 0:
                model.learn(
                    total_timesteps=remaining,
                    callback=[
                        LatestCheckpoint(run_dir / "checkpoints", int(cfg.checkpoint_every)),
                        VisitationCounter(run_dir / VISITATION_FILE),
                    ],
                    tb_log_name=str(cfg.agent.name),
                    reset_num_timesteps=cfg.resume is None,
                    progress_bar=_show_progress(cfg),
                )
    finally:
        env.close()
    atomic_save(model.save, run_dir / "model.zip")

    result = evaluate_policy_episodes(
        model,
        str(cfg.env.id),
        int(cfg.eval.episodes),
        eval_seed(cfg),
        cfg.env.max_episode_steps,
        env_kwargs,
        bool(cfg.eval.deterministic),
    )
    atomic_write_json(run_dir / "eval.json", result)
    extras = after_training(cfg, run_dir, model)  # novelty map, evaluation video
    unit = "gradient" if str(cfg.agent.algo) in IMITATION_ALGOS else "env"
    _print_summary(run_dir, f"{model.num_timesteps} {unit}", result, extras)
    return run_dir


def _show_progress(cfg: DictConfig) -> bool:
    """``cfg.progress_bar``, but never in a sweep's jobs: parallel bars garble one terminal."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return False
    return bool(cfg.progress_bar)


def _print_summary(
    run_dir: Path, trained: str, result: dict, extras: dict[str, Path] | None = None
) -> None:
    """Tell the user where everything landed."""
    success = result["success_rate"]
    success_text = "n/a" if success is None else f"{success:.2f}"
    print(
        f"trained {trained} steps | success_rate {success_text} | "
        f"mean_return {result['mean_return']:.3g} over {result['episodes']} episodes\n"
        f"  model:  {run_dir / 'model.zip'}\n"
        f"  config: {run_dir / 'config.yaml'}\n"
        f"  eval:   {run_dir / 'eval.json'}\n"
        + "".join(f"  {k + ':':<7} {v}\n" for k, v in (extras or {}).items())
        + f"  logs:   tensorboard --logdir {run_dir / 'tb'}\n"
        f"  curves: python -m rndx.report {run_dir}"
    )


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; a resume swaps in the run's saved config plus allowed overrides."""
    if cfg.resume is not None:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        cfg = resume_config(cfg.resume, overrides)
    train(cfg)


if __name__ == "__main__":
    main()
