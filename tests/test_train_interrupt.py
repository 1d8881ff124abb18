"""Ctrl-C during training saves a checkpoint, says how to continue and exits with 130; the
run then resumes from that checkpoint. The interrupt is a callback raising KeyboardInterrupt
(what Python raises on SIGINT), so no signal is sent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import rndx.train
from rndx.evaluate import evaluate_run, load_model_file
from rndx.train import resume_config, train

pytestmark = pytest.mark.timeout(600)

STOP_AT = 768  # smoke recipe: 4 envs x 64 steps = 256 env steps per rollout
# Ctrl-C at the last step of the third rollout, before PPO trains on it: the checkpoint
# counts the two rollouts the model was trained on
SAVED_AT = 512
N_EPOCHS = 2  # the smoke recipe's: SB3 counts n_epochs updates per rollout trained on


class _CtrlC(rndx.train.VisitationCounter):
    """The run's visit counter, pressing Ctrl-C once the run reaches STOP_AT env steps."""

    def _on_step(self) -> bool:
        super()._on_step()
        if self.num_timesteps >= STOP_AT:
            raise KeyboardInterrupt
        return True


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run ``python -m rndx.train *args`` in this process; return its exit status."""
    monkeypatch.setattr(sys, "argv", ["rndx.train", *args])
    with pytest.raises(SystemExit) as info:
        rndx.train.main()
    return int(info.value.code)


def test_ctrl_c_saves_a_checkpoint_that_resume_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    args = ["experiment=smoke", f"run_dir={run}", "video.enabled=false", "progress_bar=true"]
    with monkeypatch.context() as patch:
        patch.setattr(rndx.train, "VisitationCounter", _CtrlC)
        assert _cli(patch, *args) == 130
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == (
        f"interrupted at {SAVED_AT} env steps; checkpoint saved; "
        f"continue with: python -m rndx.train resume={run}"
    )
    assert "Traceback" not in err
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["num_timesteps"] == SAVED_AT  # the periodic one (every 1024) was not due yet
    checkpoint = load_model_file("intrinsic_ppo", run / "checkpoints" / "latest.zip")
    assert checkpoint.num_timesteps == SAVED_AT
    assert checkpoint._n_updates == SAVED_AT // 256 * N_EPOCHS
    # the model as the third rollout began: its observations are not in the statistics
    # (init: 50 random steps x 4 envs), so the resumed run counts that rollout once
    assert float(checkpoint.intrinsic.obs_rms.count) == pytest.approx(200 + SAVED_AT + 1e-4)
    from rndx.utils.io import _HELD

    assert str(run.resolve()) not in _HELD  # the run dir's lock went with the run
    # counts up to the checkpoint (one pose per env step), for the resumed run to add to
    assert _visits(run) == SAVED_AT
    assert not (run / "model.zip").exists()

    # Evaluating the unfinished run points to its checkpoint.
    with pytest.raises(FileNotFoundError, match=r"checkpoints/latest.zip' \(512 env steps\)"):
        evaluate_run(run)

    # A new run into the same dir is refused before Hydra writes into it.
    overrides = (run / ".hydra" / "overrides.yaml").read_bytes()
    assert _cli(monkeypatch, "experiment=smoke", f"run_dir={run}", "agent=ppo") == 2
    assert f"resume={run}" in capsys.readouterr().err
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides

    train(resume_config(run))
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["num_timesteps"] == 2048  # 512 + 6 rollouts of 256
    final = load_model_file("intrinsic_ppo", run / "model.zip")
    assert final.num_timesteps == 2048
    assert final._n_updates == 2048 // 256 * N_EPOCHS  # every rollout trained on, once
    assert _visits(run) == 2048
    assert len([p for p in (run / "tb").iterdir() if p.is_dir()]) == 1  # one continued log


def _visits(run: Path) -> int:
    return int(np.load(run / "visitation.npz")["counts"].sum())


class _Crash(rndx.train.VisitationCounter):
    """The run's visit counter, crashing the process (an exception SB3 does not catch, as a
    kill would end it) in the middle of a rollout once the run passes CRASH_AT env steps."""

    def _on_step(self) -> bool:
        super()._on_step()
        if self.num_timesteps >= CRASH_AT:
            raise RuntimeError("simulated crash")
        return True


CRASH_AT = 1400  # in the 6th rollout (1280-1536), after the checkpoint due at 1024


@pytest.mark.parametrize("every", [1024, 300])
def test_a_crashed_run_resumes_on_the_rollout_grid_without_losing_an_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int
) -> None:
    """The checkpoint is written at a rollout's start, after PPO trained on the one before:
    its step count is what the model learned from, and a resume neither skips an update nor
    overshoots total_timesteps (checkpoint_every=300 is off the 256-step rollout grid)."""
    run = tmp_path / "run"
    cfg = ["experiment=smoke", f"run_dir={run}", "video.enabled=false", f"checkpoint_every={every}"]
    with monkeypatch.context() as patch:
        patch.setattr(rndx.train, "VisitationCounter", _Crash)
        monkeypatch.setattr(sys, "argv", ["rndx.train", *cfg])
        with pytest.raises(SystemExit):  # Hydra's exit after printing the error
            rndx.train.main()
    saved = load_model_file("intrinsic_ppo", run / "checkpoints" / "latest.zip")
    expect = 1024 if every == 1024 else 1280  # the last rollout start at or past a mark
    assert saved.num_timesteps == expect
    assert saved._n_updates == expect // 256 * N_EPOCHS
    assert _visits(run) == expect

    train(resume_config(run))
    final = load_model_file("intrinsic_ppo", run / "model.zip")
    assert final.num_timesteps == 2048  # not past total_timesteps
    assert final._n_updates == 2048 // 256 * N_EPOCHS
    assert _visits(run) == 2048


def test_ctrl_c_during_the_final_evaluation_keeps_model_zip_and_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(rndx.train, "evaluate_policy_episodes", pressed)
        code = _cli(patch, "experiment=smoke", f"run_dir={run}", "total_timesteps=512")
    assert code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "interrupted after training (512 steps; model.zip saved) while evaluating; "
        f"evaluate it with: python -m rndx.evaluate run={run}"
    )
    assert load_model_file("intrinsic_ppo", run / "model.zip").num_timesteps == 512
    assert evaluate_run(run, episodes=1)["episodes"] == 1
