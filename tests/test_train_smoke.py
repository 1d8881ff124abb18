"""End-to-end: compose the smoke recipe, train, save, reload, resume, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from rndx.config import NewRunDirCallback, check_new_run_dir
from rndx.evaluate import evaluate_run, load_model_file
from rndx.paths import config_dir
from rndx.train import check_settings, resume_config, train

pytestmark = pytest.mark.timeout(600)


def _smoke_cfg(run_dir: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=["experiment=smoke", f"run_dir={run_dir}", *overrides])


def test_train_smoke_writes_a_reloadable_run(tmp_path: Path) -> None:
    run = train(_smoke_cfg(tmp_path / "run"))
    for name in ("model.zip", "config.yaml", "eval.json", "checkpoints/latest.zip"):
        assert (run / name).is_file(), name
    assert any((run / "tb").rglob("events.out.tfevents.*"))

    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2
    assert {"success_rate", "mean_return", "std_return", "mean_length", "seed"} <= set(result)

    model = load_model_file("intrinsic_ppo", run / "model.zip")  # default agent: ppo_rnd
    assert model.num_timesteps >= 2048
    obs = model.observation_space.sample()
    action, _ = model.predict(obs, deterministic=True)
    assert model.action_space.contains(np.asarray(action, dtype=model.action_space.dtype))

    again = evaluate_run(run, episodes=3, seed=7)
    assert again["episodes"] == 3 and (run / "eval_7.json").is_file()

    # A second run into the same run_dir is refused before it writes anything.
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match=rf"already holds a run .*resume={run}"):
        train(_smoke_cfg(run, "agent=ppo"))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_reaches_total_timesteps(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    run = train(_smoke_cfg(tmp_path / "run", "total_timesteps=1000"))
    first = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert 1000 <= first["num_timesteps"] < 2048
    # SB3 trains whole rollouts: the run says where it stops
    assert (
        "total_timesteps=1000 is not a whole number of rollouts (n_envs 4 x n_steps 64 = 256 "
        "steps each): training runs to 1024 steps"
    ) in capfd.readouterr().err
    # as if the run had been killed after logging past its last checkpoint
    from torch.utils.tensorboard import SummaryWriter

    (tb_run,) = [p for p in (run / "tb").iterdir() if p.is_dir()]
    with SummaryWriter(str(tb_run)) as writer:
        writer.add_scalar("rollout/ep_rew_mean", 999.0, first["num_timesteps"] + 64)

    train(resume_config(run, ["total_timesteps=2048"]))
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["num_timesteps"] >= 2048
    assert load_model_file("intrinsic_ppo", run / "model.zip").num_timesteps >= 2048
    # One TensorBoard run folder: the resumed run continues the same log.
    assert len([p for p in (run / "tb").iterdir() if p.is_dir()]) == 1
    # ... and TensorBoard hides the points logged after the checkpoint it resumed from
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_run), size_guidance={"scalars": 0})
    acc.Reload()
    values = [e.value for e in acc.Scalars("rollout/ep_rew_mean")]
    assert values and 999.0 not in values
    from rndx.report import read_scalars

    steps, values = read_scalars(run)["rollout/ep_rew_mean"]
    assert 999.0 not in values  # rndx.report too
    # ... but keeps what was logged at the checkpoint's own step (a rollout trained on)
    assert first["num_timesteps"] in list(steps)
    assert sorted(steps) == sorted(set(steps))  # and logs no step twice

    # A corrupt checkpoint stops the resume with an error naming it; model.zip is untouched.
    model_bytes = (run / "model.zip").read_bytes()
    (run / "checkpoints" / "latest.zip").write_bytes(b"truncated by a crash")
    with pytest.raises(ValueError, match=r"checkpoint '.*latest.zip' is corrupt"):
        train(resume_config(run, ["total_timesteps=4096"]))
    assert (run / "model.zip").read_bytes() == model_bytes


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("total_timesteps=-5", "total_timesteps=-5 must be an integer >= 1"),
        ("n_envs=0", "n_envs=0 must be an integer >= 1"),
        ("checkpoint_every=0", "checkpoint_every=0 must be an integer >= 1"),
        ("total_timesteps=1.5", "total_timesteps=1.5 must be an integer >= 1"),
        ("device=tpu", "unknown device 'tpu'"),
        ("eval.episodes=0", "eval.episodes=0 must be an integer >= 1"),
        ("eval.seed=abc", r"eval.seed='abc' must be an integer in \[0, 4294967295\]"),
        ("eval.seed=-2", r"eval.seed=-2 must be an integer in \[0, 4294967295\]"),
        ("eval.deterministic=maybe", "eval.deterministic='maybe' must be true or false"),
        ("video.episodes=0", "video.episodes=0 must be an integer >= 1"),
        ("video.format=webm", "video.format='webm' must be one of mp4, gif"),
        ("video.enabled=maybe", "video.enabled='maybe' must be true or false"),
        ("video.dir=5", "video.dir=5 must be null or a folder path"),
        ("progress_bar=maybe", "progress_bar='maybe' must be true or false"),
        ("seed=1.5", r"seed=1.5 must be an integer in \[0, 4294967295\]"),
        ("seed=-1", r"seed=-1 must be an integer in \[0, 4294967295\]"),
        ("seed=4294967296", r"seed=4294967296 must be an integer in \[0, 4294967295\]"),
        ("env.id=rndx/AGVWarehous-v0", "did you mean 'rndx/AGVWarehouse-v0'"),
        ("demos=d.npz", "demos='d.npz' is for imitation agents .*drop demos="),
    ],
)
def test_bad_settings_fail_before_the_run_dir_is_written(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train(_smoke_cfg(tmp_path / "run", override))
    assert not (tmp_path / "run").exists()


def test_whole_number_settings_are_recorded_as_ints(tmp_path: Path) -> None:
    cfg = _smoke_cfg(tmp_path, "seed=3.0", "total_timesteps=2e3", "eval.seed=7.0")
    settings = check_settings(cfg)
    assert settings["seed"] == 3 and settings["total_timesteps"] == 2000
    assert settings["eval.seed"] == 7 and settings["eval.episodes"] == 2
    assert all(type(v) is int for v in settings.values())


def test_a_run_dir_that_holds_a_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    check_new_run_dir(tmp_path)  # nothing trained yet (it failed before learning): reusable
    (tmp_path / "tb").mkdir()  # killed before its first checkpoint: nothing to resume
    with pytest.raises(FileExistsError, match=r"stopped before its first checkpoint .*delete"):
        check_new_run_dir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.zip").write_bytes(b"zip")
    with pytest.raises(FileExistsError, match=r"\(checkpoints, tb\); continue it with"):
        check_new_run_dir(tmp_path)
    # On the command line the Hydra callback stops it before Hydra writes into the dir.
    callback = NewRunDirCallback()
    resume = DictConfig({"run_dir": str(tmp_path), "resume": str(tmp_path)})
    callback.on_run_start(resume)  # a resume is not refused (it locks the dir for the run)
    callback.on_run_end(resume)
    with pytest.raises(SystemExit) as info:
        callback.on_run_start(DictConfig({"run_dir": str(tmp_path), "resume": None}))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run dir") and f"resume={tmp_path}" in err
    from rndx.utils.io import _HELD

    assert str(tmp_path.resolve()) not in _HELD  # the refused command let go of the dir


def test_resume_rejects_changing_the_env(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("seed: 0\nenv: {name: a}\nagent: {name: ppo}\n")
    with pytest.raises(ValueError, match="cannot change 'env.name'"):
        resume_config(tmp_path, ["env.name=other"])


@pytest.mark.parametrize(
    ("text", "why"),
    [("env: [1, 2", "ParserError"), ("[1, 2]", "a ListConfig"), ("", "no env, agent, seed")],
)
def test_a_corrupt_run_config_is_named_in_one_line(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(
        ValueError, match=rf"config.yaml' is corrupt or not an rndx run config \({why}"
    ):
        resume_config(tmp_path)
    with pytest.raises(ValueError, match="is corrupt or not an rndx run config"):
        evaluate_run(tmp_path)


def test_evaluate_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_run(tmp_path / "nope")


def test_evaluate_corrupt_model(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("seed: 0\nenv: {name: a}\nagent: {algo: ppo}\n")
    with pytest.raises(FileNotFoundError, match="model.zip"):
        evaluate_run(tmp_path)
    (tmp_path / "model.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="corrupt"):
        evaluate_run(tmp_path)


def test_evaluate_cli_prints_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rndx.evaluate import main

    assert main([f"run={tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["bogus=1"]) == 2
