"""rndx.evaluate: whole episodes spread over the envs, the run's and the caller's settings
handed on, the evaluation seed, and seeds checked before any rollout. A policy that always
stands still stands in for a trained model (episodes end at max_episode_steps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

import rndx.evaluate
from rndx.evaluate import _summary, eval_seed, evaluate_policy_episodes, evaluate_run, main

ENV = "rndx/AGVWarehouse-v0"


class _StandStill:
    """predict() as SB3's: zero actions; records the ``deterministic`` flags it was given."""

    def __init__(self) -> None:
        self.deterministic: set[bool] = set()
        self.starts: list[list[bool]] = []

    def predict(self, obs, episode_start=None, deterministic=True):
        self.deterministic.add(deterministic)
        self.starts.append([bool(s) for s in episode_start])
        return np.zeros((len(obs), 2), dtype=np.float32), None


@pytest.mark.parametrize("episodes", [2, 10, 17])
def test_evaluation_runs_exactly_the_episodes_asked_for(
    episodes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to 8 envs (env i seeded seed + i, so 2 episodes are those of seeds 0 and 1); more
    episodes than envs: each env runs its share, none runs more."""
    import rndx.envs

    make, sizes = rndx.envs.make_sb3_vec_env, []

    def recording_make(env_id, n_envs, *args):
        sizes.append(n_envs)
        return make(env_id, n_envs, *args)

    monkeypatch.setattr(rndx.envs, "make_sb3_vec_env", recording_make)
    result = evaluate_policy_episodes(_StandStill(), ENV, episodes, 0, max_episode_steps=3)
    assert result["episodes"] == episodes and sizes == [min(episodes, 8)]
    assert result["mean_length"] == 3.0 and result["seed"] == 0


@pytest.mark.parametrize("deterministic", [True, False])
def test_evaluation_asks_the_policy_for_the_actions_asked_for(deterministic: bool) -> None:
    policy = _StandStill()
    evaluate_policy_episodes(policy, ENV, 2, 0, 3, {}, deterministic=deterministic)
    assert policy.deterministic == {deterministic}


def test_the_policy_is_told_which_envs_start_an_episode() -> None:
    """A policy with memory (the chunk policy's action queue) starts afresh in each episode."""
    policy = _StandStill()
    evaluate_policy_episodes(policy, ENV, 10, 0, max_episode_steps=3)  # 8 envs, 2 rounds
    first, running = [True] * 8, [False] * 8
    assert policy.starts == [first, running, running, first, running, running]


def test_the_summary_of_episodes() -> None:
    result = _summary([1.0, 5.0], [2, 4], [True, False], seed=7)
    assert result == {
        "success_rate": 0.5,
        "mean_return": 3.0,
        "std_return": 2.0,
        "mean_length": 3.0,
        "episodes": 2,
        "seed": 7,
    }
    assert _summary([1.0], [2], [None], seed=7)["success_rate"] is None  # no is_success


def test_the_evaluation_seed_is_eval_seed_else_the_runs_seed_plus_1000() -> None:
    assert eval_seed(OmegaConf.create({"seed": 3, "eval": {"seed": None}})) == 1003
    assert eval_seed(OmegaConf.create({"seed": 3, "eval": {"seed": 0}})) == 0  # 0 is a seed
    assert eval_seed(OmegaConf.create({"seed": 3, "eval": {"seed": 12}})) == 12


def test_evaluate_run_hands_on_the_runs_env_settings_and_the_callers_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "seed": 2,
        "env": {"id": ENV, "max_episode_steps": 17, "kwargs": {"layout": "large"}},
        "agent": {"algo": "ppo"},
        "eval": {"episodes": 20, "deterministic": True, "seed": None},
    }
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    calls: list[tuple] = []

    def evaluate(model: Any, *args: Any) -> dict:
        calls.append(args)
        return {"episodes": args[1], "seed": args[2]}

    monkeypatch.setattr(rndx.evaluate, "load_model_file", lambda algo, path: object())
    monkeypatch.setattr(rndx.evaluate, "evaluate_policy_episodes", evaluate)
    evaluate_run(tmp_path)
    evaluate_run(tmp_path, episodes=3, seed=9, deterministic=False)
    assert calls == [
        (ENV, 20, 1002, 17, {"layout": "large"}, True),
        (ENV, 3, 9, 17, {"layout": "large"}, False),
    ]
    assert json.loads((tmp_path / "eval_9.json").read_text()) == {"episodes": 3, "seed": 9}


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_one_error_line_before_anything_is_loaded(
    tmp_path: Path, seed: str, capsys: pytest.CaptureFixture
) -> None:
    """Gymnasium's own error for seed=-1 came as a traceback, after the model was loaded."""
    assert main([f"run={tmp_path / 'nope'}", f"seed={seed}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: seed={seed} must be an integer in [0, 4294967295]")
    assert "Traceback" not in err
