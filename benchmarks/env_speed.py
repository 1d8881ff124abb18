"""Environment steps per second: rndx's AGV envs against Gymnasium baselines, single core.

Run from the repository root::

    python benchmarks/env_speed.py              # 3 s per repeat, 3 repeats (median reported)
    python benchmarks/env_speed.py --quick --out env_speed_quick   # 1 s, 1 repeat: a smoke test

Every row is measured the same way: random actions in [-1, 1] are drawn up front from a seeded
``numpy.random.Generator`` (so drawing them costs nothing inside the timed loop), the env is
warmed up for ``--warmup`` steps (this also triggers numba's compilation in rndx), then a loop of
``env.step`` calls is timed for ``--seconds`` with ``time.perf_counter``. Single envs are reset
inside the timed loop whenever an episode ends; vector envs reset themselves. The median over
``--repeats`` is reported, as steps per second per vehicle (vector steps x N / seconds), with the
ratio to Gymnasium-Robotics' PointMaze_UMaze-v3.

Thread pools are limited to one thread before numpy (and torch) are imported, so every figure is
a single-core figure.
"""

from __future__ import annotations

import os

# Single-core figures: must be set before numpy / numba / torch are imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

try:  # torch is only pulled in by SB3; pin it to one thread as well when it is there.
    import torch

    torch.set_num_threads(1)
    _TORCH = torch.__version__
except ImportError:  # pragma: no cover - torch is a hard dependency of rndx
    _TORCH = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python benchmarks/env_speed.py` from anywhere
    sys.path.insert(0, ROOT)

import rndx  # noqa: E402,F401  (registers the rndx/... ids)
from benchmarks._args import (  # noqa: E402
    REPORT_RULE,
    nonnegative_int,
    positive_float,
    positive_int,
    printed_report,
    report_path,
)
from rndx.envs import make_sb3_vec_env  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

try:
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    ROBOTICS_ERROR: str | None = None
except ImportError as exc:
    ROBOTICS_ERROR = f"{type(exc).__name__}: {exc}"

POINTMAZE = "PointMaze_UMaze-v3"
STATIC = "rndx/AGVWarehouse-v0"
DYNAMIC = "rndx/AGVWarehouseDynamic-v0"
BULLET = "rndx/BulletAGVWarehouse-v0"
PUSH = "rndx/MujocoPush-v0"
BAR_SINGLE = 1.5  # single static env, x PointMaze
BAR_BATCHED = 15.0  # batched static env at N=64, x PointMaze (per vehicle)


@dataclass
class Row:
    env: str
    face: str  # "single" | "gym vector" | "SB3 VecEnv"
    n: int
    make: Callable[[], Any]
    rate: float | None = None  # median steps/s per vehicle
    note: str = ""


def _action_pool(space: gym.spaces.Box, n: int, seed: int) -> np.ndarray:
    """Random actions in [-1, 1] (clipped to the space), as many as make a ~1M-float pool."""
    dim = int(np.prod(space.shape[-1:]))
    size = 1 << max(6, min(12, int(np.log2(max(1, (1 << 20) // (n * dim))))))
    rng = np.random.default_rng(seed)
    shape = (size,) + ((n, dim) if n > 1 or len(space.shape) > 1 else (dim,))
    acts = rng.uniform(-1.0, 1.0, size=shape)
    low, high = (np.broadcast_to(b, shape[1:]) for b in (space.low, space.high))
    acts = np.clip(acts, low, high)
    return acts.astype(space.dtype)


def prepare(row: Row, args: argparse.Namespace) -> tuple[Any, Callable[[float], float]]:
    """Build ``row``'s env, pre-draw its actions, warm it up; return (env, timed loop).

    The timed loop runs ``env.step`` for ``seconds`` and returns steps/s per vehicle; it keeps
    its place in the action pool (and the episode) from one call to the next.
    """
    env = row.make()
    single = row.face == "single"
    if row.face == "SB3 VecEnv":
        env.reset()  # seeded by its factory
    else:
        env.reset(seed=args.seed)
    acts = _action_pool(env.action_space, row.n, args.seed)
    mask = len(acts) - 1
    step, reset, clock = env.step, env.reset, time.perf_counter
    k = 0

    def warm() -> None:
        nonlocal k
        for _ in range(args.warmup):
            out = step(acts[k])
            k = (k + 1) & mask
            if single and (out[2] or out[3]):
                reset()

    def timed(seconds: float) -> float:
        nonlocal k
        steps = 0
        t0 = clock()
        deadline = t0 + seconds
        if single:
            while True:
                _, _, term, trunc, _ = step(acts[k])
                k = (k + 1) & mask
                steps += 1
                if term or trunc:
                    reset()
                if clock() >= deadline:
                    break
        else:  # vector envs reset themselves
            while True:
                step(acts[k])
                k = (k + 1) & mask
                steps += 1
                if clock() >= deadline:
                    break
        return steps * row.n / (clock() - t0)

    warm()
    return env, timed


def build_rows() -> list[Row]:
    def vec(env_id: str, n: int) -> Callable[[], Any]:
        return lambda: gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")

    rows = [
        Row(STATIC, "single", 1, lambda: gym.make(STATIC)),
        Row(DYNAMIC, "single", 1, lambda: gym.make(DYNAMIC)),
        Row(STATIC, "gym vector", 64, vec(STATIC, 64)),
        Row(DYNAMIC, "gym vector", 64, vec(DYNAMIC, 64)),
        Row(STATIC, "gym vector", 1024, vec(STATIC, 1024)),
        Row(STATIC, "SB3 VecEnv", 64, lambda: make_sb3_vec_env(STATIC, 64, seed=0)),
    ]
    if ROBOTICS_ERROR is None:
        rows.append(Row(POINTMAZE, "single", 1, lambda: gym.make(POINTMAZE)))
    rows.append(Row("Reacher-v5", "single", 1, lambda: gym.make("Reacher-v5")))
    # robot tasks with contact physics (issue 6)
    rows.append(Row(BULLET, "single", 1, lambda: gym.make(BULLET)))
    # half the physics substeps: the speed/tracking trade-off README quotes
    rows.append(
        Row(BULLET, "single, time_step=1/60", 1, lambda: gym.make(BULLET, time_step=1 / 60))
    )
    rows.append(Row(PUSH, "single", 1, lambda: gym.make(PUSH)))
    return rows


def _loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _cpu_name() -> str:
    name = platform.processor()
    if name:
        return name
    try:  # platform.processor() is often empty on Linux
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"'' (/proc/cpuinfo: {line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return f"'' ({platform.machine()})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=REPORT_RULE.format(default="env_speed")
    )
    parser.add_argument(
        "--seconds", type=positive_float, help="timed duration per repeat (default 3)"
    )
    parser.add_argument("--repeats", type=positive_int, help="repeats, median reported (default 3)")
    parser.add_argument(
        "--warmup", type=nonnegative_int, default=500, help="untimed steps before timing"
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed of the pre-drawn actions"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 s, 1 repeat")
    parser.add_argument("--out", default=None, help="report name (default env_speed)")
    args = parser.parse_args(argv)
    with printed_report(report_path(parser, args, RESULTS, "env_speed")):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.seconds is None:
        args.seconds = 1.0 if args.quick else 3.0
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3

    load_before = _loadavg()
    rows = build_rows()
    timers: dict[int, Callable[[float], float]] = {}
    envs = []
    for i, row in enumerate(rows):
        print(f"warming up {row.env} [{row.face}, N={row.n}] ...", file=sys.stderr, flush=True)
        try:
            env, timers[i] = prepare(row, args)
            envs.append(env)
        except Exception as exc:  # a broken baseline should not hide the other rows
            row.note = f"{type(exc).__name__}: {exc}"
            print(f"  failed: {row.note}", file=sys.stderr, flush=True)
    # Round-robin: repeat r of every row runs before repeat r + 1 of any, so a burst of load
    # from elsewhere on the machine hits all rows alike instead of skewing the ratios.
    rates: dict[int, list[float]] = {i: [] for i in timers}
    for r in range(args.repeats):
        print(f"repeat {r + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
        for i, timed in timers.items():
            rates[i].append(timed(args.seconds))
    for i, vals in rates.items():
        rows[i].rate = statistics.median(vals)
    for env in envs:
        env.close()

    base = next((r.rate for r in rows if r.env == POINTMAZE and r.rate), None)

    def ratio(rate: float | None) -> str:
        return f"{rate / base:.2f}x" if rate and base else "n/a"

    cmd = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    print("## Environment speed (single core)\n")
    print(
        f"- machine: processor={_cpu_name()}, os.cpu_count()={os.cpu_count()}, "
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"gymnasium {gym.__version__}"
        + (f", torch {_TORCH}" if _TORCH else "")
        + f", load average (1/5/15 min) before the run {load_before}, after {_loadavg()}"
    )
    print(
        "- threads: OMP/MKL/OpenBLAS/numba limited to 1 before importing numpy"
        + (", torch.set_num_threads(1)" if _TORCH else "")
        + ": single-core figures"
    )
    print(
        f"- method: {args.warmup} warm-up steps, then {args.seconds:g} s timed x "
        f"{args.repeats} repeat(s) taken round-robin over the rows, median; pre-drawn "
        f"uniform [-1, 1] actions (numpy Generator, seed {args.seed}); single envs reset on "
        "terminated/truncated, vector envs reset themselves"
    )
    print(f"- command: `cd {os.getcwd()} && {cmd}`\n")
    if ROBOTICS_ERROR is not None:
        print(
            f"> NOTE: gymnasium_robotics is not importable ({ROBOTICS_ERROR}), so there is no "
            f"{POINTMAZE} baseline and no ratios. Install it with: "
            '`pip install -e ".[bench]"`\n'
        )

    print("| env | face | N | steps/s (per vehicle) | x PointMaze |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        rate = f"{r.rate:,.0f}" if r.rate else f"failed ({r.note})"
        print(f"| {r.env} | {r.face} | {r.n} | {rate} | {ratio(r.rate)} |")
    print()

    def find(env: str, face: str, n: int) -> float | None:
        return next((r.rate for r in rows if (r.env, r.face, r.n) == (env, face, n)), None)

    bars = [
        (
            f"single static env ({STATIC}) >= {BAR_SINGLE:g}x PointMaze",
            find(STATIC, "single", 1),
            BAR_SINGLE,
        ),
        (
            f"batched static env ({STATIC}, gym vector, N=64) >= {BAR_BATCHED:g}x PointMaze",
            find(STATIC, "gym vector", 64),
            BAR_BATCHED,
        ),
    ]
    for text, rate, bar in bars:
        if not base or not rate:
            verdict = "SKIPPED (no PointMaze baseline)" if not base else "FAIL (not measured)"
        else:
            verdict = f"{'PASS' if rate / base >= bar else 'FAIL'} ({rate / base:.3f}x)"
        print(f"- bar: {text}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
