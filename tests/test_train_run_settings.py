"""What rndx.train hands on: the run's seed and env settings to the env, the whole-number
settings to config.yaml, the eval settings to the final evaluation; what a resume may change;
and a Ctrl-C in the middle of a PPO update. Tiny runs (2 envs x 32 steps per rollout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import rndx.envs
import rndx.train
from rndx.evaluate import load_model_file
from rndx.paths import config_dir
from rndx.train import TrainingInterrupted, resolve_run_dir, resume_config, train
from tests.test_train_device_seed import TINY as DEVICE_SEED_TINY

pytestmark = pytest.mark.timeout(300)

TINY = [
    *DEVICE_SEED_TINY,  # the tiny PPO recipe of the seed tests
    "total_timesteps=64",
    "checkpoint_every=64",
    "eval.episodes=1",
    "video.enabled=false",
]
ROLLOUT = 64  # 2 envs x 32 steps


def _cfg(run_dir: Path | None, *overrides: str) -> DictConfig:
    where = [] if run_dir is None else [f"run_dir={run_dir}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=[*TINY, *where, *overrides])


class _Stop(Exception):
    pass


def test_the_env_gets_the_runs_seed_and_env_settings_and_config_yaml_records_ints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple] = []

    def make_env(*args: Any) -> None:
        made.append(args)
        raise _Stop  # config.yaml is written; nothing needs training

    monkeypatch.setattr(rndx.envs, "make_sb3_vec_env", make_env)
    run = tmp_path / "run"
    overrides = ["seed=3.0", "total_timesteps=1.28e2", "env.max_episode_steps=17"]
    with pytest.raises(_Stop):
        train(_cfg(run, *overrides, "+env.kwargs.reward=dense"))
    ((env_id, n_envs, seed, max_steps, kwargs),) = made
    assert (env_id, n_envs, seed, max_steps) == ("rndx/AGVWarehouse-v0", 2, 3, 17)
    assert type(seed) is int and kwargs["reward"] == "dense"
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.seed == 3 and type(saved.seed) is int  # not 3.0: summaries list seed 3
    assert saved.total_timesteps == 128 and type(saved.total_timesteps) is int


def test_the_final_evaluation_uses_the_runs_eval_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    calls: list[tuple] = []
    result = {"success_rate": 0.5, "mean_return": 1.0, "episodes": 3}

    def evaluate(model: Any, *args: Any) -> dict:
        calls.append(args)
        return result

    monkeypatch.setattr(rndx.train, "evaluate_policy_episodes", evaluate)
    monkeypatch.setattr(rndx.train, "after_training", lambda *args: {})
    run = train(_cfg(tmp_path / "run", "seed=5", "eval.episodes=3", "eval.deterministic=false"))
    ((env_id, episodes, seed, max_steps, kwargs, deterministic),) = calls
    assert (env_id, episodes, max_steps, deterministic) == ("rndx/AGVWarehouse-v0", 3, 20, False)
    assert seed == 1005  # eval.seed null: the run's seed + 1000, not the training episodes
    assert kwargs == OmegaConf.to_container(_cfg(None).env.kwargs)
    assert json.loads((run / "eval.json").read_text()) == result
    # an RL run logged its episodes: the summary says how to draw its learning curves
    assert f"curves: python -m rndx.report {run}" in capsys.readouterr().out


class _CtrlCInUpdate(rndx.train.VisitationCounter):
    """The run's visit counter, pressing Ctrl-C in the third rollout's PPO update, after its
    first epoch (one update counted, weights changed)."""

    def _on_rollout_end(self) -> None:
        super()._on_rollout_end()
        if self.num_timesteps < 3 * ROLLOUT:
            return
        buffer = self.model.rollout_buffer
        get, epochs = buffer.get, []

        def get_pressed_in_epoch_2(*args: Any, **kwargs: Any):
            epochs.append(1)
            if len(epochs) == 2:
                raise KeyboardInterrupt
            return get(*args, **kwargs)

        buffer.get = get_pressed_in_epoch_2


def test_ctrl_c_in_the_middle_of_an_update_saves_the_model_from_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rndx.train, "VisitationCounter", _CtrlCInUpdate)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(_cfg(run, "total_timesteps=512", "checkpoint_every=1024"))
    saved = load_model_file("intrinsic_ppo", run / "checkpoints" / "latest.zip")
    # back to the third rollout's start: two rollouts trained on, 2 epochs each; the
    # interrupted update's first epoch is not counted, so a resume runs it in full once
    assert saved.num_timesteps == 2 * ROLLOUT
    assert saved._n_updates == 2 * 2


def test_resume_may_change_eval_and_video_settings_but_not_the_seed_or_a_misspelt_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(_cfg(tmp_path)))
    cfg = resume_config(tmp_path, ["eval.episodes=5", "video.enabled=false", "total_timesteps=9"])
    assert (cfg.eval.episodes, cfg.video.enabled, cfg.total_timesteps) == (5, False, 9)
    assert cfg.resume == str(tmp_path) and cfg.run_dir == str(tmp_path)
    for item in ("seed=5", "n_envs=8", "agent.ppo.n_steps=8"):
        with pytest.raises(ValueError, match=f"cannot change '{item.split('=')[0]}' when resuming"):
            resume_config(tmp_path, [item])
    # as Hydra does for a new run: a misspelt key fails, it is not added and ignored
    with pytest.raises(ValueError, match=r"cannot change 'eval.episdes': the run's config has no"):
        resume_config(tmp_path, ["eval.episdes=5"])


def test_resume_after_the_run_dir_was_moved_logs_and_saves_in_the_new_dir(tmp_path: Path) -> None:
    old = train(_cfg(tmp_path / "old", "agent=ppo"))
    new = tmp_path / "moved"
    shutil.move(old, new)
    train(resume_config(new, [f"total_timesteps={2 * ROLLOUT}"]))
    assert load_model_file("ppo", new / "model.zip").num_timesteps == 2 * ROLLOUT
    assert not old.exists()  # nothing written where the run was
    assert len([p for p in (new / "tb").iterdir() if p.is_dir()]) == 1  # one continued log


def test_a_failed_save_of_model_zip_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = train(_cfg(tmp_path / "run", "agent=ppo"))
    before = (run / "model.zip").read_bytes()
    from stable_baselines3.common.base_class import BaseAlgorithm

    save = BaseAlgorithm.save

    def crash_writing_the_model(self, path, *args, **kwargs):
        if Path(path).parent.name == "checkpoints":
            return save(self, path, *args, **kwargs)
        Path(path).write_bytes(b"half a zip")  # the final model.zip: the disk fills up
        raise OSError("disk full")

    monkeypatch.setattr(BaseAlgorithm, "save", crash_writing_the_model)
    with pytest.raises(OSError, match="disk full"):
        train(resume_config(run, [f"total_timesteps={2 * ROLLOUT}"]))
    assert (run / "model.zip").read_bytes() == before


def test_a_fresh_run_without_a_run_dir_is_named_by_env_agent_and_seed() -> None:
    name = resolve_run_dir(_cfg(None, "seed=3", "agent=ppo"))
    assert name.parent == Path("runs")
    assert name.name.startswith("agv_warehouse__ppo__3__")  # seeds of a sweep never share one


def test_resuming_a_missing_run_dir_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(FileNotFoundError, match="cannot resume: run dir .*gone' not found"):
        train(_cfg(None, f"resume={missing}"))
    assert not missing.exists()


def test_an_imitation_run_gets_the_runs_seed_and_cannot_be_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rndx.agents.chunk_flow

    calls: list[tuple] = []

    def clone(*args: Any, **kwargs: Any) -> None:
        calls.append((*args, kwargs))
        raise _Stop  # what it was given is all this test needs

    monkeypatch.setattr(rndx.agents.chunk_flow, "clone_from_config", clone)
    run = tmp_path / "run"
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train", overrides=["agent=chunk_flow", "demos=d.npz", "seed=4", f"run_dir={run}"]
        )
    with pytest.raises(_Stop):
        train(cfg)
    ((_, demos, env_id, _, _, seed, device, tb_dir, kwargs),) = calls
    assert (demos, env_id, seed, device) == ("d.npz", "rndx/AGVWarehouse-v0", 4, "cpu")
    assert tb_dir == run / "tb" / "chunk_flow_1" and kwargs == {"env_kwargs": {"layout": "small"}}
    # a resume would train it again from scratch over the run's files: refused
    with pytest.raises(ValueError, match="agent 'chunk_flow' cannot be resumed: train it again"):
        train(resume_config(run))
