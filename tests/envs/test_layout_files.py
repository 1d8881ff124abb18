"""Your own warehouse layout as a file: ``layout="path/to/file.txt"`` (what
``env.kwargs.layout=...`` on the command line gives: a string, not a Path)."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import pytest

import rndx  # noqa: F401  (registers the ids)
from rndx.envs.agv.world import get_world

LAYOUT = """; 10 x 6 test layout
##########
#SS......#
#SS.XX..G#
#...XX..G#
#........#
##########
"""


def test_a_layout_file_given_as_a_string_path_is_loaded(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "mine.txt"
    path.write_text(LAYOUT)
    env = gym.make("rndx/AGVWarehouse-v0", layout=str(path), min_goal_distance=1.0)
    assert env.unwrapped.core.world.layout.size == (10.0, 6.0)
    env.reset(seed=0)
    monkeypatch.chdir(tmp_path)  # relative to the working directory
    assert get_world("mine.txt", 8.0).layout.name == "mine"


def test_an_edited_layout_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text(LAYOUT)
    assert get_world(str(path), 8.0).layout.size == (10.0, 6.0)
    path.write_text(LAYOUT.replace("#........#\n", "#........#\n#........#\n"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later edit
    assert get_world(str(path), 8.0).layout.size == (10.0, 7.0)


def test_a_missing_file_and_an_unknown_name_say_both_forms(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout file .*nope.txt' not found.*'small'"):
        gym.make("rndx/AGVWarehouse-v0", layout=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="unknown layout 'smal'.*path to your own layout file"):
        gym.make("rndx/AGVWarehouse-v0", layout="smal")


def test_a_run_records_its_layout_file_by_absolute_path(tmp_path: Path, monkeypatch) -> None:
    """Training on ``env.kwargs.layout=mine.txt`` (relative to where the command runs)
    records the absolute path in config.yaml, so ``rndx.evaluate`` finds the layout from any
    other working directory; a missing file fails before the run dir is written."""
    from rndx.evaluate import evaluate_run
    from rndx.train import train
    from tests.test_train_smoke import _smoke_cfg

    here = tmp_path / "project"
    here.mkdir()
    (here / "mine.txt").write_text(LAYOUT)
    monkeypatch.chdir(here)
    short = ["env.kwargs.layout=mine.txt", "+env.kwargs.min_goal_distance=1.0",
             "agent=ppo", "total_timesteps=256", "video.enabled=false"]  # fmt: skip
    run = train(_smoke_cfg(tmp_path / "run", *short))
    assert f"layout: {here / 'mine.txt'}" in (run / "config.yaml").read_text()
    monkeypatch.chdir(tmp_path)
    assert evaluate_run(run, episodes=1)["episodes"] == 1
    with pytest.raises(
        ValueError, match=r"env.kwargs.layout='nope.txt': layout file 'nope.txt' not found"
    ):
        train(_smoke_cfg(tmp_path / "run2", "env.kwargs.layout=nope.txt", "agent=ppo"))
    assert not (tmp_path / "run2").exists()
