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


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not a torch file at all", "UnpicklingError"),
        (b"", "the file ends early"),
        (b"PK\x03\x04 truncated zip", "RuntimeError"),
    ],
)
def test_a_corrupt_torch_file_is_named_briefly_without_torchs_unsafe_advice(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    from rndx.utils.io import load_torch_state

    bad = tmp_path / "policy.pt"
    bad.write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_torch_state(bad, "rndx.x/1", "chunk_flow checkpoint")
    msg = str(err.value)
    assert msg.startswith(f"{str(bad)!r} is corrupt or not an rndx chunk_flow checkpoint (")
    assert reason in msg and "weights_only" not in msg and "\n" not in msg


def test_a_torch_file_of_another_format_is_named(tmp_path: Path) -> None:
    import torch

    from rndx.utils.io import load_torch_state

    other = tmp_path / "other.pt"
    torch.save({"format": "someone.else/3", "w": torch.zeros(2)}, other)
    expected = r"not an rndx monitor file \(expected format 'rndx.m/1'\)"
    with pytest.raises(ValueError, match=expected):
        load_torch_state(other, "rndx.m/1", "monitor file")


def test_a_directory_given_for_a_saved_file_is_named_as_one(tmp_path) -> None:
    from rndx.utils.io import load_torch_state

    (tmp_path / "monitor.pt").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"is a directory, not a file \(.pt files in it: \['monitor.pt'\]\)"
    ):
        load_torch_state(tmp_path, "rndx.monitor/1", "monitor file")
    with pytest.raises(FileNotFoundError, match="monitor file '.*nothing.pt' not found"):
        load_torch_state(tmp_path / "nothing.pt", "rndx.monitor/1", "monitor file")


def test_the_temporary_is_a_hidden_file_beside_the_target_that_a_later_run_cleans_up(
    tmp_path: Path,
) -> None:
    """Beside the target, so the rename is atomic (not a copy across filesystems); named so
    that remove_stale_temporaries finds it when a killed process left it behind."""
    import os
    import time

    from rndx.utils.io import remove_stale_temporaries

    seen: list[Path] = []

    def save(path: Path) -> None:
        seen.append(path)
        path.write_text("new")

    atomic_save(save, tmp_path / "run" / "model.zip")
    (tmp,) = seen
    assert tmp.parent == tmp_path / "run" and tmp.name.startswith(".model")
    assert tmp.suffix == ".zip" and not tmp.exists()
    tmp.write_text("half")  # as a kill in the middle of the write leaves it
    os.utime(tmp, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert (tmp_path / "run" / "model.zip").read_text() == "new"


def test_ctrl_c_during_a_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "m.zip"
    target.write_text("old")

    def pressed(path: Path) -> None:
        path.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_save(pressed, target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.zip"] and target.read_text() == "old"


def test_the_file_and_then_its_rename_are_flushed_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync the written file before the rename (else a power cut can leave the new name on
    an empty file), then the folder (else the rename itself can be lost)."""
    import os
    import stat

    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def recording_replace(src, dst) -> None:
        events.append("rename")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    atomic_write_text(tmp_path / "a.txt", "x")
    assert events == ["fsync file", "rename", "fsync dir"]


def test_a_torch_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """weights_only: a pickled object of any class (which could run code on load) is not
    unpickled; the file is named as not an rndx file."""
    import torch

    from rndx.utils.io import load_torch_state

    path = tmp_path / "monitor.pt"
    torch.save({"format": "rndx.m/1", "x": _Pickled()}, path)
    with pytest.raises(ValueError, match="is corrupt or not an rndx monitor file"):
        load_torch_state(path, "rndx.m/1", "monitor file")


class _Pickled:
    """An object of a class of its own, as a crafted file would carry one."""
