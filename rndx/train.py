"""Train an agent: ``python -m rndx.train [env=...] [agent=...] [experiment=...] [key=value ...]``.

Thin by design: compose the config, build env and agent, learn with checkpoints, save, evaluate.
Continue a run with ``python -m rndx.train resume=<run dir> [total_timesteps=N]``; Ctrl-C
saves ``checkpoints/latest.zip`` first, so an interrupted run continues the same way.
Imitation agents learn from a demos file instead of the env:
``python -m rndx.train agent=chunk_flow demos=<file.npz>``.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, ProgressBarCallback
from stable_baselines3.common.utils import set_random_seed

from hydra_plugins.rndx_sweeper.rndx_sweeper import register_missing_launchers
from rndx.agents import IMITATION_ALGOS, build_agent, load_agent, run_state
from rndx.agents.run_state import RunState
from rndx.config import check_new_run_dir, to_dict
from rndx.evaluate import eval_seed, evaluate_policy_episodes, load_run_config
from rndx.paths import config_dir
from rndx.record import FORMATS, after_training
from rndx.utils.checks import whole_number
from rndx.utils.headless import use_headless_backends
from rndx.utils.io import (
    atomic_save,
    atomic_write_json,
    atomic_write_text,
    dir_lock,
    release_dir,
    remove_stale_temporaries,
)
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

_ABSENT = object()  # OmegaConf.select's default for a key the config lacks

# Seeds go to numpy's legacy seeding (set_random_seed), which takes 0 .. 2**32 - 1.
SEED_MAX = 2**32 - 1


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after ``checkpoints/latest.zip`` was saved (``trained``: after
    training and ``model.zip``, during the evaluation, novelty map or video)."""

    def __init__(self, run_dir: Path, num_timesteps: int, trained: bool = False) -> None:
        super().__init__(
            f"interrupted after training ({num_timesteps} steps; model.zip saved) while "
            f"evaluating; evaluate it with: python -m rndx.evaluate run={run_dir}"
            if trained
            else f"interrupted at {num_timesteps} env steps; checkpoint saved; "
            f"continue with: python -m rndx.train resume={run_dir}"
        )
        self.run_dir = run_dir
        self.num_timesteps = num_timesteps


def save_checkpoint(
    model: BaseAlgorithm, checkpoint_dir: Path, state: RunState | None = None
) -> None:
    """Write ``latest.zip`` and its step count ``latest.json`` atomically (a crash keeps the
    previous pair), after the run state that makes a resume sample-identical (``latest_state
    .pkl``; none for an env whose state is not saved). A crash between the writes leaves a
    state of another step than the zip, which a resume then ignores."""
    state_file = checkpoint_dir / run_state.STATE_FILE
    if state is not None:
        run_state.save(state, state_file)
    else:
        state_file.unlink(missing_ok=True)
    atomic_save(model.save, checkpoint_dir / "latest.zip")
    atomic_write_json(
        checkpoint_dir / "latest.json",
        {"num_timesteps": int(model.num_timesteps), "path": "latest.zip"},
    )


class LatestCheckpoint(BaseCallback):
    """Every ``every`` env steps (and at the end) write ``latest.zip`` and ``latest.json``.

    A checkpoint is written when a rollout starts, after PPO has trained on the one before:
    every step it counts is one the saved model learned from, so a resumed run trains on as
    many rollouts, on the same step grid, as an uninterrupted one (saving at the step that
    crosses the mark, inside a rollout, would count a rollout the model never trained on and
    resume off the grid). ``on_save`` runs after each periodic save (the visit counts).
    Each checkpoint carries the :class:`RunState` of its moment; ``restore`` (a resumed run's)
    puts its generators and gSDE noise back at the first rollout start.
    """

    def __init__(
        self,
        checkpoint_dir: Path,
        every: int,
        on_save: Callable[[], None] | None = None,
        restore: RunState | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.every = every
        self.on_save = on_save
        self._restore = restore
        self._next_save = every
        self.trained_steps: int | None = None  # env steps at the start of the rollout under way
        self._state: tuple[dict, int] | None = None
        self.run_state: RunState | None = None  # as the rollout under way began
        self._capturable = True  # False once the env's state did not pickle

    def _on_training_start(self) -> None:
        # A resumed model starts at its saved num_timesteps, not 0.
        self._remember()
        self._next_save = (self.trained_steps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self._restore is not None:  # a resumed run's first rollout: after SB3's draws
            run_state.restore_random(self.model, self._restore)
            self._restore = None
        self._remember()
        if self._capturable:
            self.run_state = run_state.capture(self.model, noise_drawn=True)
            self._capturable = self.run_state is not None
        if self.trained_steps >= self._next_save:
            self.save()
            if self.on_save is not None:
                self.on_save()
            self._next_save = (self.trained_steps // self.every + 1) * self.every

    def _remember(self) -> None:
        """The model as a rollout starts (weights, optimisers, the intrinsic module's
        normalisers), for :meth:`rollback`; small MLPs, so the copy costs ~ms a rollout."""
        self.trained_steps = self.model.num_timesteps
        self._state = (copy.deepcopy(self.model.get_parameters()), self.model._n_updates)

    def rollback(self) -> bool:
        """Put the model back as it was when the rollout under way began (Ctrl-C): neither
        the partly collected rollout (already in the normalisers' statistics) nor a partly
        run update stays in it, so a resume collects and trains on that rollout once.

        :return: whether it rolled back (not before training starts, nor after it ended:
            the model is then complete)."""
        if self._state is None:
            return False
        params, n_updates = self._state
        self.model.set_parameters(params, exact_match=True, device=self.model.device)
        self.model._n_updates = n_updates
        self.model.num_timesteps = self.trained_steps
        return True

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._state = None  # training is complete: nothing to roll back
        self.trained_steps = self.model.num_timesteps
        # the next rollout's gSDE noise is not drawn yet: a resume draws it
        if self._capturable:
            self.run_state = run_state.capture(self.model, noise_drawn=False)
        self.save()

    def save(self) -> None:
        """Write the model, its step count and run state (:func:`save_checkpoint`)."""
        save_checkpoint(self.model, self.checkpoint_dir, self.run_state)


def resolve_device(device: str) -> str:
    """Map ``auto`` to cuda when a GPU is visible, else cpu; check any other torch device name.

    The policy and the intrinsic module live on this device; the batched env stays on the CPU
    (numpy + numba), so a GPU only pays off with many envs per step (``experiment=gpu``).

    :raises ValueError: if ``device`` is neither ``auto`` nor a torch device name, or names a
        CUDA device torch cannot see (SB3 would fall back to the CPU without a word).
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"unknown device {device!r}; use auto, cpu, cuda or cuda:<index>"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"device={device!r} but torch sees no CUDA GPU (torch {torch.__version__}); "
                "use device=cpu, or device=auto for the GPU when there is one"
            )
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device={device!r} but torch sees {count} CUDA GPU(s): cuda:0 to cuda:{count - 1}"
            )
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
    :raises ValueError: on an override outside RESUMABLE_KEYS, or of a key the run's config
        lacks (a ``+`` prefix adds one).
    """
    cfg = load_run_config(run_dir)
    for item in overrides:
        key = item.partition("=")[0].lstrip("+")
        if key.split(".")[0] not in RESUMABLE_KEYS:
            raise ValueError(
                f"cannot change {key!r} when resuming; allowed: {', '.join(RESUMABLE_KEYS)}"
            )
        # as Hydra for a new run: a misspelt key fails (merged, it would be added and ignored)
        if not item.startswith("+") and OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ValueError(
                f"cannot change {key!r}: the run's config has no such key (+{key}=... adds it)"
            )
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    cfg.resume = str(run_dir)
    cfg.run_dir = str(run_dir)
    OmegaConf.set_struct(cfg, True)
    return cfg


def _make_or_load_agent(
    cfg: DictConfig, env, run_dir: Path, device: str
) -> tuple[BaseAlgorithm, RunState | None]:
    """A fresh agent, or the resumed run's latest checkpoint attached to ``env`` with the
    env's state put back (:mod:`rndx.agents.run_state`), and the run state whose generators
    the first rollout restores (None: a fresh run, or a resume without it, said on stderr)."""
    tb_dir = run_dir / "tb"
    if cfg.resume is None:
        return build_agent(cfg.agent, env, int(cfg.seed), device, tb_dir), None
    checkpoint = run_dir / "checkpoints" / "latest.zip"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: {str(checkpoint)!r} not found")
    model = load_agent(str(cfg.agent.algo), checkpoint, env=env, device=device)
    model.tensorboard_log = str(tb_dir)  # same TB folder even if the run dir was moved
    _purge_after(tb_dir, str(cfg.agent.name), int(model.num_timesteps))
    state, why = run_state.load(checkpoint.parent / run_state.STATE_FILE, model)
    if state is None:
        print(
            f"note: resuming without the run state ({why}): the episodes restart and the "
            "generators are seeded afresh, so the run is reproducible but not sample-identical "
            "to an uninterrupted one",
            file=sys.stderr,
        )
    else:
        run_state.restore_env(model, state)
    return model, state


def _purge_after(tb_dir: Path, name: str, step: int) -> None:
    """Hide from TensorBoard what a killed run logged after its last checkpoint: the resumed
    run logs those steps again, into the same folder (SB3 continues ``<name>_<latest id>``).
    TensorBoard drops earlier events after ``step`` when it reads this marker."""
    from stable_baselines3.common.utils import get_latest_run_id
    from torch.utils.tensorboard import SummaryWriter

    run_id = get_latest_run_id(str(tb_dir), name)
    if run_id > 0:
        # step + 1: what was logged at the checkpoint's own step (the rollout that ended there,
        # trained on before the checkpoint) stays; the resumed run logs from the next rollout
        SummaryWriter(str(tb_dir / f"{name}_{run_id}"), purge_step=step + 1).close()


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
        env_kwargs=to_dict(cfg.env.get("kwargs")) or {},
    )


def _seed(key: str, value: Any) -> int:
    try:
        seed = whole_number(key, value, 0)
    except ValueError:
        seed = -1
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{key}={value!r} must be an integer in [0, {SEED_MAX}]")
    return seed


def _flag(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r} must be true or false")


def check_settings(cfg: DictConfig) -> dict[str, Any]:
    """Fail before anything is written (rather than after training) on a bad setting.

    :return: the settings to record in config.yaml as normalised: whole numbers as ints
        (``seed=1.0`` is 1), a layout file's path made absolute (so the run's later commands
        find it from any working directory).
    :raises ValueError: naming the key, its value and what is allowed.
    """
    counts = ["total_timesteps", "n_envs", "checkpoint_every", "eval.episodes"]
    video = cfg.get("video")  # runs saved before the video settings have none
    if video is not None:
        counts.append("video.episodes")
    values = {key: whole_number(key, OmegaConf.select(cfg, key), 1) for key in counts}
    values["seed"] = _seed("seed", cfg.get("seed"))
    eval_seed_value = OmegaConf.select(cfg, "eval.seed")
    if eval_seed_value is not None:
        values["eval.seed"] = _seed("eval.seed", eval_seed_value)
    _flag("progress_bar", cfg.get("progress_bar"))
    _flag("eval.deterministic", OmegaConf.select(cfg, "eval.deterministic"))
    if video is not None:
        _flag("video.enabled", video.get("enabled"))
        if video.get("format") not in FORMATS:
            raise ValueError(
                f"video.format={video.get('format')!r} must be one of {', '.join(FORMATS)}"
            )
        if video.get("dir") is not None and not isinstance(video.get("dir"), str):
            raise ValueError(f"video.dir={video.get('dir')!r} must be null or a folder path")
    from rndx.envs.agv.world import is_layout_path, layout_file  # after the headless set-up

    layout = OmegaConf.select(cfg, "env.kwargs.layout")
    if isinstance(layout, str) and is_layout_path(layout):
        try:
            values["env.kwargs.layout"] = str(layout_file(layout).resolve())
        except ValueError as exc:
            raise ValueError(f"env.kwargs.layout={layout!r}: {exc}") from None
    return values


def train(cfg: DictConfig) -> Path:
    """Train, checkpoint, save and evaluate one run described by ``cfg``; return its run dir.

    :raises DirInUseError: if another process is training into the same run dir.
    """
    from rndx.envs import resolve_env_id

    settings = check_settings(cfg)
    device = resolve_device(str(cfg.device))  # a bad setting or device fails before any write
    if cfg.get("demos") is not None and str(cfg.agent.algo) not in IMITATION_ALGOS:
        raise ValueError(
            f"demos={cfg.demos!r} is for imitation agents (agent=chunk_flow); "
            f"agent={cfg.agent.name} learns from the env: drop demos="
        )
    resolve_env_id(str(cfg.env.id))  # so does an unknown env id (it names the closest ones)
    run_dir = resolve_run_dir(cfg)
    if cfg.resume is not None and not run_dir.is_dir():
        raise FileNotFoundError(f"cannot resume: run dir {str(run_dir)!r} not found")
    # one process per run dir: two runs (or two resumes) at once would overwrite each other's
    # checkpoints and interleave their logs
    with dir_lock(run_dir, "run dir"):
        if cfg.resume is None:
            check_new_run_dir(run_dir)  # a second run would overwrite and mix with the first
        for path in remove_stale_temporaries(run_dir):
            print(f"removed {path}: a write that a killed run left unfinished", file=sys.stderr)
        return _train_in(cfg, run_dir, settings, device)


def _train_in(cfg: DictConfig, run_dir: Path, settings: dict[str, Any], device: str) -> Path:
    """:func:`train` once the run dir is locked and checked."""
    from rndx.envs import make_sb3_vec_env

    cfg = OmegaConf.create(to_dict(cfg))  # resolved copy: the caller's config stays untouched
    cfg.run_dir = str(run_dir)
    for key, value in settings.items():
        OmegaConf.update(cfg, key, value)
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
            model, restore = _make_or_load_agent(cfg, env, run_dir, device)
            remaining = int(cfg.total_timesteps) - model.num_timesteps
            if remaining > 0:
                _say_whole_rollouts(model, int(cfg.total_timesteps))
                _learn(model, cfg, run_dir, remaining, restore)
    finally:
        env.close()
    atomic_save(model.save, run_dir / "model.zip")
    try:
        return _finish(cfg, run_dir, model, env_kwargs)
    except KeyboardInterrupt:
        raise TrainingInterrupted(run_dir, int(model.num_timesteps), trained=True) from None


def _finish(cfg: DictConfig, run_dir: Path, model: Any, env_kwargs: dict[str, Any]) -> Path:
    """Evaluate the saved model, draw the run's pictures and say where everything is."""
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
    imitation = str(cfg.agent.algo) in IMITATION_ALGOS
    unit = "gradient" if imitation else "env"
    _print_summary(run_dir, f"{model.num_timesteps} {unit}", result, extras, curves=not imitation)
    return run_dir


def _say_whole_rollouts(model: BaseAlgorithm, total: int) -> None:
    """SB3 trains whole rollouts of n_envs x n_steps: say so when ``total_timesteps`` is not
    a multiple (a 2048-step budget on 16 envs x 256 steps trains 4096)."""
    n_steps = getattr(model, "n_steps", None)
    if not n_steps:
        return
    rollout = int(n_steps) * int(model.n_envs)
    end = model.num_timesteps + -(-(total - model.num_timesteps) // rollout) * rollout
    if end != total:
        print(
            f"total_timesteps={total} is not a whole number of rollouts (n_envs {model.n_envs}"
            f" x n_steps {n_steps} = {rollout} steps each): training runs to {end} steps",
            file=sys.stderr,
        )


def _learn(
    model: BaseAlgorithm,
    cfg: DictConfig,
    run_dir: Path,
    remaining: int,
    restore: RunState | None = None,
) -> None:
    """``model.learn`` with the run's callbacks; Ctrl-C saves the checkpoint and the visit
    counts as of the start of the rollout under way (what the model was trained on), then
    raises :class:`TrainingInterrupted`. ``restore``: a resumed run's state, whose generators
    the first rollout puts back."""
    visits = VisitationCounter(run_dir / VISITATION_FILE)
    checkpoints = LatestCheckpoint(
        run_dir / "checkpoints", int(cfg.checkpoint_every), visits.save, restore
    )
    # visits first: its rollout-start copy is current when a checkpoint is written after it
    callbacks: list[BaseCallback] = [visits, checkpoints]
    bar = ProgressBarCallback() if _show_progress(cfg) else None  # here, to close it on Ctrl-C
    try:
        model.learn(
            total_timesteps=remaining,
            callback=callbacks if bar is None else [*callbacks, bar],
            tb_log_name=str(cfg.agent.name),
            reset_num_timesteps=cfg.resume is None,
        )
    except KeyboardInterrupt:
        if bar is not None and hasattr(bar, "pbar"):
            bar.pbar.close()
        # the rollout under way was not trained on (or only in part): back to its start, so
        # the resumed run collects and trains on it once
        rolled_back = checkpoints.rollback()
        save_checkpoint(model, run_dir / "checkpoints", checkpoints.run_state)
        visits.save(at_rollout_start=rolled_back)  # a resumed run adds to these counts
        raise TrainingInterrupted(run_dir, int(model.num_timesteps)) from None


def _show_progress(cfg: DictConfig) -> bool:
    """``cfg.progress_bar``, but never in a sweep's jobs: parallel bars garble one terminal."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return False
    return bool(cfg.progress_bar)


def _print_summary(
    run_dir: Path,
    trained: str,
    result: dict,
    extras: dict[str, Path] | None = None,
    curves: bool = True,
) -> None:
    """Tell the user where everything landed (``curves``: the run logged env episodes, so
    rndx.report can draw its learning curves; imitation runs log only their losses)."""
    success = result["success_rate"]
    success_text = "n/a" if success is None else f"{success:.2f}"
    print(
        f"trained {trained} steps | success_rate {success_text} | "
        f"mean_return {result['mean_return']:.3g} over {result['episodes']} episodes\n"
        f"  model:  {run_dir / 'model.zip'}\n"
        f"  config: {run_dir / 'config.yaml'}\n"
        f"  eval:   {run_dir / 'eval.json'}\n"
        + "".join(f"  {k + ':':<7} {v}\n" for k, v in (extras or {}).items())
        + f"  logs:   tensorboard --logdir {run_dir / 'tb'}"
        + (f"\n  curves: python -m rndx.report {run_dir}" if curves else "")
    )


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; a resume swaps in the run's saved config plus allowed overrides."""
    if cfg.resume is not None:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        cfg = resume_config(cfg.resume, overrides)
    try:
        train(cfg)
    except TrainingInterrupted as exc:
        print(exc, file=sys.stderr)
        # Hydra skips its run-end callbacks on SystemExit: drop the run-dir lock its start
        # callback took, or it would outlive this run in a notebook or test session
        release_dir(exc.run_dir)
        sys.exit(130)  # as a shell reports a job stopped by SIGINT


if __name__ == "__main__":
    # hydra/launcher=ray without the plugin: the install line. Here, not at import, so that
    # importing rndx.train (train(), resume_config()) leaves Hydra's global ConfigStore alone
    register_missing_launchers()
    main()
