"""Atomic writes leave either the old file or the new one, never a partial one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rndx.agents import algo_class
from rndx.utils.io import atomic_save, atomic_write_json, atomic_write_text


def test_atomic_write_text_and_json(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "x.txt", "hello")
    assert (tmp_path / "a" / "x.txt").read_text() == "hello"
    atomic_write_json(tmp_path / "x.json", {"b": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"b": 1}


def test_failed_save_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.zip"
    target.write_text("old")

    def boom(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_save(boom, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.zip"]


def test_unknown_algo_names_known_ones() -> None:
    with pytest.raises(ValueError, match="known: chunk_flow, intrinsic_ppo, ppo"):
        algo_class("sac_typo")


def test_atomic_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Not mkstemp's owner-only 0600: the mode open() would give under the umask."""
    import os

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o644
