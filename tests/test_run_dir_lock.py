"""One process per run dir: a second run, or a second resume, started while one trains into the
dir fails at once naming the other process; a resume keeps the run's own ``.hydra/`` files (its
overrides group it in ``rndx.sweep summarize``) and removes the temporary files of writes a
killed run left unfinished."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import rndx.train
from rndx.paths import config_dir
from rndx.train import resume_config, train
from rndx.utils.io import DirInUseError, acquire_dir, atomic_write_text, dir_lock, release_dir

pytestmark = pytest.mark.timeout(600)

HOLD = """
import sys, time
from rndx.utils.io import acquire_dir
acquire_dir(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def _other_process_holds(run: Path) -> subprocess.Popen:
    """A second Python process that takes the run dir's lock and keeps it."""
    env = {**os.environ, "PYTHONPATH": str(Path(rndx.__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _smoke_cfg(run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(
            "train",
            overrides=["experiment=smoke", f"run_dir={run_dir}", "video.enabled=false", *overrides],
        )


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["rndx.train", *args])
    try:
        rndx.train.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_the_lock_is_reentrant_in_a_process_and_exclusive_between_processes(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    with dir_lock(run, "run dir"):
        acquire_dir(run)  # the same process again: counted, not refused
        release_dir(run)
    proc = _other_process_holds(run)
    try:
        with pytest.raises(DirInUseError, match=rf"run dir '{run}' is in use .*pid {proc.pid}"):
            acquire_dir(run, "run dir")
    finally:
        proc.kill()
        proc.wait()
    with dir_lock(run):  # the lock died with its process
        pass


def test_a_second_run_or_resume_into_a_busy_run_dir_fails_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    proc = _other_process_holds(run)
    try:
        # the command line: refused by the Hydra callback, before .hydra/ is written
        assert _cli(monkeypatch, "experiment=smoke", f"run_dir={run}") == 2
        assert f"is in use by another process (pid {proc.pid})" in capsys.readouterr().err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
        # the Python API
        with pytest.raises(DirInUseError, match="in use by another process"):
            train(_smoke_cfg(run))
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        proc.kill()
        proc.wait()

    train(_smoke_cfg(run, "total_timesteps=512"))
    proc = _other_process_holds(run)
    try:
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        with pytest.raises(DirInUseError, match="in use by another process"):
            train(resume_config(run, ["total_timesteps=1024"]))
        # the command line: refused before Hydra writes its resume files or status.json
        assert _cli(monkeypatch, f"resume={run}", "total_timesteps=1024") == 2
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    finally:
        proc.kill()
        proc.wait()


def test_resume_keeps_the_runs_hydra_files_and_removes_stale_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    args = ["experiment=smoke", f"run_dir={run}", "video.enabled=false", "total_timesteps=512"]
    assert _cli(monkeypatch, *args) == 0
    overrides = (run / ".hydra" / "overrides.yaml").read_bytes()
    # what a kill in the middle of an atomic write leaves: the temporary beside the target
    stale = [run / "checkpoints" / ".latest.tmp-k1ll3d.zip", run / ".eval.tmp-k1ll3d.json"]
    for path in stale:
        path.write_bytes(b"half")
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # an hour old
    fresh = run / ".eval_7.tmp-inflight.json"  # another command's write in flight: kept
    fresh.write_bytes(b"half")
    atomic_write_text(run / "notes.txt", "kept")  # a finished atomic write is no temporary
    assert _cli(monkeypatch, f"resume={run}", "total_timesteps=1024") == 0
    assert (run / ".hydra" / "overrides.yaml").read_bytes() == overrides
    (resumed,) = (run / ".hydra").glob("resume_*/overrides.yaml")
    assert "total_timesteps=1024" in resumed.read_text()
    assert not any(path.exists() for path in stale)
    assert fresh.exists()
    assert (run / "notes.txt").read_text() == "kept"


TRY = """
import sys
from rndx.utils.io import DirInUseError, acquire_dir
try:
    acquire_dir(sys.argv[1])
except DirInUseError:
    print("busy")
else:
    print("got it")
"""


def _another_process_gets(run: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": str(Path(rndx.__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", TRY, str(run)], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert out in ("busy", "got it"), out
    return out == "got it"


def test_an_inner_holder_letting_go_keeps_the_dir_locked_for_the_outer_one(tmp_path: Path) -> None:
    """The Hydra callback holds the run dir for the whole command and train() takes it again:
    train() ending must not unlock it while Hydra still writes status.json."""
    run = tmp_path / "run"
    acquire_dir(run, "run dir")
    try:
        with dir_lock(run, "run dir"):
            pass
        assert not _another_process_gets(run)
    finally:
        release_dir(run)
    assert (run / ".lock").read_text() == ""  # no pid left behind for the next error message
    assert _another_process_gets(run)  # the last holder let go


def test_the_lock_file_names_only_the_holder_after_a_killed_run(tmp_path: Path) -> None:
    """A killed run leaves its pid in .lock; the next holder's pid replaces it, so a refused
    command names the process that holds the dir, not a mix of the two."""
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("4194304123\n")
    with dir_lock(run):
        assert (run / ".lock").read_text() == f"{os.getpid()}\n"
