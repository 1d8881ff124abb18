"""Atomic file writes: a crash mid-write leaves the old file, never a truncated one."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the lock is a no-op
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
# what atomic_save's temporary files are called: `.<stem>.tmp-<random><suffix>`
TMP_MARK = ".tmp-"


def _fsync_dir(directory: Path) -> None:
    """Flush the directory entry so the rename itself survives a power cut (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(save_fn: Callable[[Path], Any], path: str | os.PathLike[str]) -> Path:
    """Call ``save_fn(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The temporary file lives in the same directory so ``os.replace`` is an atomic rename
    (a rename across filesystems is a copy). The temp name keeps ``path``'s suffix because
    some writers (SB3's ``save``) append ``.zip`` to names that lack it.

    :param save_fn: writes the full content to the path it is given.
    :param path: final destination; parent folders are created.
    :return: the destination path.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.stem}{TMP_MARK}", suffix=dest.suffix
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_fn(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)
    return dest


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_save(lambda p: p.write_text(text, encoding="utf-8"), path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_torch_state(path: str | os.PathLike[str], fmt: str, what: str) -> dict[str, Any]:
    """Load a ``torch.save``-d dict whose ``"format"`` entry must equal ``fmt`` (on the CPU,
    ``weights_only``: tensors and plain containers, no pickled code).

    :param what: names the file in errors, e.g. ``"chunk_flow checkpoint"``.
    :raises FileNotFoundError: if ``path`` is missing or a directory (the message says
        which; the commands print it in one line).
    :raises ValueError: if the file is corrupt or of another format.
    """
    import torch

    p = Path(path)
    if p.is_dir():  # e.g. a run dir for the file in it
        inside = sorted(q.name for q in p.glob("*.pt"))[:5]
        raise FileNotFoundError(
            f"{what} {str(p)!r} is a directory, not a file"
            + (f" (.pt files in it: {inside})" if inside else "")
        )
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r} not found")
    bad = f"{str(p)!r} is corrupt or not an rndx {what}"
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notice on a foreign file
            warnings.simplefilter("ignore")
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged archive
        raise ValueError(f"{bad} ({short_reason(exc)})") from exc
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{bad} (expected format {fmt!r})")
    return state


def short_reason(exc: BaseException) -> str:
    """The gist of a failed load in one short line. torch's own message suggests
    ``weights_only=False``, which would run code from an untrusted file."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    text = re.sub(r"\x1b\[[0-9;]*m|\[enforce fail at [^\]]*\]\s*\.?", "", text).strip()
    text = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
    name = type(exc).__name__
    return f"{name}: {text[:120]}" if text else {"EOFError": "the file ends early"}.get(name, name)


class DirInUseError(RuntimeError):
    """Another process holds the directory's lock (see :func:`dir_lock`)."""


# this process's locks: resolved dir -> (file descriptor, how many holders)
_HELD: dict[str, list[int]] = {}


def acquire_dir(directory: str | os.PathLike[str], what: str = "dir") -> None:
    """Take an exclusive advisory lock on ``directory/.lock`` (created, with this pid in it).

    Re-entrant within one process (counted; release as often as acquired). The lock dies
    with the process, so a killed run never leaves a stale one.

    :raises DirInUseError: if another process holds it, naming the dir and that process's pid.
    """
    d = Path(directory)
    key = str(d.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirInUseError(
                f"{what} {str(d)!r} is in use by another process (pid {pid}); wait for it to "
                "end, or use another dir"
            ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[key] = [fd, 1]


def release_dir(directory: str | os.PathLike[str]) -> None:
    """Undo one :func:`acquire_dir`; the last one unlocks (the lock file stays, empty)."""
    key = str(Path(directory).resolve())
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        os.ftruncate(held[0], 0)
        os.close(held[0])  # closing the last descriptor drops the flock


@contextmanager
def dir_lock(directory: str | os.PathLike[str], what: str = "dir") -> Iterator[None]:
    """``with dir_lock(run_dir, "run dir"):`` hold :func:`acquire_dir` for the block."""
    acquire_dir(directory, what)
    try:
        yield
    finally:
        release_dir(directory)


def remove_stale_temporaries(
    directory: str | os.PathLike[str], min_age_s: float = 600.0
) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left under
    ``directory``: those untouched for ``min_age_s`` seconds. The age, not the run dir's lock,
    is what keeps a write in flight safe: other commands (``rndx.evaluate``, the monitor)
    write into a run without taking the lock."""
    now = time.time()
    stale = []
    for p in Path(directory).rglob(f".*{TMP_MARK}*"):
        try:
            if p.is_file() and now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                stale.append(p)
        except FileNotFoundError:  # finished (renamed) meanwhile
            continue
    return stale
