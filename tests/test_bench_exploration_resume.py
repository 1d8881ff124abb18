"""benchmarks/exploration.py keeps every finished run, so a killed benchmark resumes."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

exploration = pytest.importorskip("benchmarks.exploration")


def _fake_run(calls: list, fail_on: str | None = None):
    def run_one(
        agent,
        seed,
        steps,
        window,
        overrides,
        task="agv_hard",
        scene=None,
        eval_episodes=0,
        action_repeat=1,
    ):
        if f"{agent}/{seed}" == fail_on:
            raise RuntimeError("killed")
        calls.append(f"{agent}/{seed}")
        return {
            "agent": agent,
            "seed": seed,
            "curve": [(steps, 0.5)],
            "seconds": 1.0,
            "coverage": [(steps, 3)],
            "free_cells": 4,
            "eval": {"success_rate": 0.25} if eval_episodes else None,
        }

    return run_one


def _four_runs(tmp_path, monkeypatch, jobs: int) -> list[str]:
    """The benchmark's command line for 2 agents x 2 seeds into tmp_path, in threads."""
    monkeypatch.setattr(exploration, "RESULTS", tmp_path)
    monkeypatch.setattr(exploration, "worker_pool", ThreadPoolExecutor)
    monkeypatch.setattr(exploration, "plot", lambda *a, **k: None)
    argv = ["exploration.py", "--agents", "ppo", "ppo_rnd", "--seeds", "0", "1"]
    argv += ["--steps", "100", "--window", "50", "--jobs", str(jobs), "--tag", "t"]
    monkeypatch.setattr(sys, "argv", argv)
    return argv


def test_a_rerun_after_a_crash_trains_only_the_unfinished_runs(tmp_path, monkeypatch) -> None:
    argv = _four_runs(tmp_path, monkeypatch, jobs=1)

    calls: list[str] = []
    monkeypatch.setattr(exploration, "run_one", _fake_run(calls, fail_on="ppo/1"))
    with pytest.raises(RuntimeError, match="killed"):
        exploration.main()
    saved = json.loads((tmp_path / "t.partial.json").read_text())
    # the run in flight when ppo/1 failed (if the pool had started it) finished and was kept
    assert {"ppo/0", "ppo_rnd/0"} <= set(saved["runs"]) and "ppo/1" not in saved["runs"]
    assert not (tmp_path / "t.json").exists()

    calls.clear()
    monkeypatch.setattr(exploration, "run_one", _fake_run(calls))
    exploration.main()
    assert sorted(calls) == sorted({"ppo/1", "ppo_rnd/1"} - set(saved["runs"]))
    assert not (tmp_path / "t.partial.json").exists()
    final = json.loads((tmp_path / "t.json").read_text())
    assert all(r["eval"] == {"success_rate": 0.25} for r in final["results"])
    assert "0.25 (0.25-0.25)" in exploration.table(final["results"], [100])
    assert [(r["agent"], r["seed"]) for r in final["results"]] == [
        ("ppo", 0),
        ("ppo_rnd", 0),
        ("ppo", 1),
        ("ppo_rnd", 1),
    ]

    # other settings: the partial runs are not reused
    calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv[:-4], "--steps", "200", "--tag", "t"])
    exploration.main()
    assert len(calls) == 4


def test_a_run_that_finishes_behind_a_failing_one_is_saved(tmp_path, monkeypatch) -> None:
    """Runs are saved as they finish: a fast later run is kept when an earlier, slower one
    fails (they used to be saved in submission order, so the failure lost it)."""
    import threading

    _four_runs(tmp_path, monkeypatch, jobs=2)
    calls: list[str] = []
    second_done = threading.Event()
    inner = _fake_run(calls)

    def run_one(agent, seed, *args, **kwargs):
        if (agent, seed) == ("ppo", 0):  # the first job: fails once the second has finished
            assert second_done.wait(10)
            raise RuntimeError("killed")
        out = inner(agent, seed, *args, **kwargs)
        second_done.set()
        return out

    monkeypatch.setattr(exploration, "run_one", run_one)
    with pytest.raises(RuntimeError, match="killed"):
        exploration.main()
    saved = json.loads((tmp_path / "t.partial.json").read_text())
    assert "ppo_rnd/0" in saved["runs"] and "ppo/0" not in saved["runs"]
