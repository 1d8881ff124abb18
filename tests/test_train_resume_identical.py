"""A resumed run trains on the samples an uninterrupted one would have: after a crash in
mid-rollout, after Ctrl-C and after raising total_timesteps, the final weights (policy, both
value heads, predictor, optimisers, normalisers), the visit counts and the logged episode
statistics equal the uninterrupted run's bit for bit (rndx.agents.run_state). Where the
env's state is not saved, the resume says so and is as before."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rndx.train
from rndx.agents import run_state
from rndx.evaluate import load_model_file
from rndx.train import resume_config, train
from tests.test_train_interrupt import _Crash, _CtrlC  # mid-rollout, at 1400 / 768 steps
from tests.test_train_smoke import _smoke_cfg

pytestmark = pytest.mark.timeout(600)
UNPICKLABLE = "rndx_tests/LockedPendulum-v0"


def _algo(agent: str) -> str:
    return "ppo" if agent == "ppo" else "intrinsic_ppo"


def _final(run: Path, agent: str) -> tuple[dict, dict, np.ndarray, list]:
    model = load_model_file(_algo(agent), run / "model.zip")
    params = model.get_parameters()
    visits = run / "visitation.npz"  # the AGV envs' (pose in info)
    counts = np.load(visits)["counts"] if visits.is_file() else None
    episodes = [(e["r"], e["l"]) for e in model.ep_info_buffer]
    return params, {"n_updates": model._n_updates, "steps": model.num_timesteps}, counts, episodes


def _assert_same(a, b) -> None:
    params_a, meta_a, counts_a, episodes_a = a
    params_b, meta_b, counts_b, episodes_b = b
    assert meta_a == meta_b
    assert params_a.keys() == params_b.keys()
    for name in params_a:
        flat_a, flat_b = _flatten(params_a[name]), _flatten(params_b[name])
        assert flat_a.keys() == flat_b.keys()
        for key in flat_a:
            assert torch.equal(flat_a[key], flat_b[key]), f"{name}: {key} differs"
    assert (counts_a is None and counts_b is None) or np.array_equal(counts_a, counts_b)
    assert episodes_a == episodes_b


def _flatten(state, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state
    elif isinstance(state, dict):
        for key, value in state.items():
            out.update(_flatten(value, f"{prefix}.{key}"))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            out.update(_flatten(value, f"{prefix}.{i}"))
    elif isinstance(state, (int, float, bool)):
        out[prefix] = torch.tensor(state)
    return out


def _interrupted(tmp: Path, monkeypatch: pytest.MonkeyPatch, stop, overrides: list[str]) -> Path:
    run = tmp / "interrupted"
    args = ["experiment=smoke", f"run_dir={run}", "video.enabled=false", *overrides]
    with monkeypatch.context() as patch:
        patch.setattr(rndx.train, "VisitationCounter", stop)
        patch.setattr(sys, "argv", ["rndx.train", *args])
        with pytest.raises(SystemExit):
            rndx.train.main()
    assert (run / "checkpoints" / run_state.STATE_FILE).is_file()
    assert not (run / "model.zip").exists()
    train(resume_config(run))
    return run


@pytest.mark.parametrize(
    ("agent", "stop", "sde", "env"),
    [
        ("ppo_rnd", _Crash, False, "env=agv_warehouse_dynamic"),
        ("ppo_rdd", _CtrlC, True, "env=agv_warehouse_dynamic"),
        ("ppo", _Crash, True, "env=agv_warehouse_dynamic"),
        ("ppo_rnd", _CtrlC, False, "env=mujoco_push"),  # a DummyVecEnv of Gymnasium envs
        ("ppo", _Crash, False, "env=bullet_agv_warehouse"),  # physics state via saveBullet
    ],
)
def test_a_resumed_run_equals_the_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent: str, stop, sde: bool, env: str
) -> None:
    overrides = [f"agent={agent}", f"+agent.ppo.use_sde={sde}", env]
    whole = train(_smoke_cfg(tmp_path / "whole", "video.enabled=false", *overrides))
    resumed = _interrupted(tmp_path, monkeypatch, stop, overrides)
    _assert_same(_final(whole, agent), _final(resumed, agent))


def test_raising_total_timesteps_continues_as_one_longer_run(tmp_path: Path) -> None:
    """The state saved at the end of training (gSDE noise of the next rollout not drawn yet)
    continues like the longer run."""
    overrides = ["video.enabled=false", "+agent.ppo.use_sde=true"]
    whole = train(_smoke_cfg(tmp_path / "whole", *overrides))
    short = train(_smoke_cfg(tmp_path / "short", "total_timesteps=1024", *overrides))
    train(resume_config(short, ["total_timesteps=2048"]))
    _assert_same(_final(whole, "ppo_rnd"), _final(short, "ppo_rnd"))


def test_a_state_from_another_step_is_ignored_and_the_resume_says_so(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    run = train(_smoke_cfg(tmp_path / "run", "video.enabled=false", "total_timesteps=1024"))
    state_file = run / "checkpoints" / run_state.STATE_FILE
    stale = tmp_path / "stale"
    train(_smoke_cfg(stale, "video.enabled=false", "total_timesteps=768"))
    state_file.write_bytes((stale / "checkpoints" / run_state.STATE_FILE).read_bytes())
    capfd.readouterr()
    train(resume_config(run, ["total_timesteps=2048"]))
    err = capfd.readouterr().err
    assert "note: resuming without the run state" in err
    assert "is from step 768, the checkpoint from step 1024" in err
    assert load_model_file("intrinsic_ppo", run / "model.zip").num_timesteps == 2048

    state_file.write_bytes(b"not a pickle")
    train(resume_config(run, ["total_timesteps=2304"]))
    assert "is unreadable" in capfd.readouterr().err


class _Locked(gym.Wrapper):
    """Pendulum holding a lock: an env whose state does not pickle (as a socket or a
    hardware handle would)."""

    def __init__(self) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.lock = threading.Lock()


gym.register(UNPICKLABLE, entry_point=_Locked, max_episode_steps=200)


def test_an_env_whose_state_is_not_saved_resumes_as_before_and_says_so(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    locked = ["env=gym", f"env.id={__name__}:{UNPICKLABLE}", "agent=ppo", "video.enabled=false"]
    run = train(_smoke_cfg(tmp_path / "run", *locked, "total_timesteps=256"))
    assert not (run / "checkpoints" / run_state.STATE_FILE).exists()
    capfd.readouterr()
    train(resume_config(run, ["total_timesteps=512"]))
    err = capfd.readouterr().err
    assert "note: resuming without the run state (the env's state does not pickle" in err
    assert "cannot pickle '_thread.lock'" in err
    assert "not sample-identical" in err
    assert load_model_file("ppo", run / "model.zip").num_timesteps == 512
