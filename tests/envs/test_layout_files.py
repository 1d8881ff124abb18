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
