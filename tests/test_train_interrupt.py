"""Ctrl-C during training saves a checkpoint, says how to continue and exits with 130; the
run then resumes from that checkpoint. The interrupt is a callback raising KeyboardInterrupt
(what Python raises on SIGINT), so no signal is sent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import rndx.train
from rndx.evaluate import evaluate_run, load_model_file
from rndx.train import resume_config, train

pytestmark = pytest.mark.timeout(600)

STOP_AT = 768  # smoke recipe: 4 envs x 64 steps = 256 env steps per rollout


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
        f"interrupted at {STOP_AT} env steps; checkpoint saved; "
        f"continue with: python -m rndx.train resume={run}"
    )
    assert "Traceback" not in err
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["num_timesteps"] == STOP_AT  # the periodic one (every 1024) was not due yet
    checkpoint = load_model_file("intrinsic_ppo", run / "checkpoints" / "latest.zip")
    assert checkpoint.num_timesteps == STOP_AT
    assert (run / "visitation.npz").is_file()  # counts so far, for the resumed run to add to
    assert not (run / "model.zip").exists()

    # Evaluating the unfinished run points to its checkpoint.
    with pytest.raises(FileNotFoundError, match=r"checkpoints/latest.zip' \(768 env steps\)"):
        evaluate_run(run)

    # A new run into the same dir is refused before Hydra writes into it.
    overrides = (run / ".hydra" / "overrides.yaml").read_bytes()
    assert _cli(monkeypatch, "experiment=smoke", f"run_dir={run}", "agent=ppo") == 2
    assert f"resume={run}" in capsys.readouterr().err
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides

    train(resume_config(run))
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["num_timesteps"] == 2048  # 768 + 5 rollouts of 256
    assert load_model_file("intrinsic_ppo", run / "model.zip").num_timesteps == 2048
    assert len([p for p in (run / "tb").iterdir() if p.is_dir()]) == 1  # one continued log
