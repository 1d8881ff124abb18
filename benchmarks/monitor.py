"""FIPER on rndx's policies over an env's shift suite, and the monitor's added latency.

``--task agv`` (default): the AGV warehouse suite, chunk policy and PPO. ``--task bullet``: the
same suite on the PyBullet AGV (rndx/BulletAGVWarehouse-v0, contact physics, ray-test lidar),
the chunk policy only, cloned from 200 noisy expert demos recorded in PyBullet. ``--task push``: the
MuJoCo push suite (``rndx.envs.mujoco.SHIFTS``: nominal, goal_nudge (benign), heavy_block,
high_friction, goal_offset, obstacle), the chunk policy only (no PPO agent learns the sparse
push in the exploration benchmark's budget), trained by behaviour cloning from 200 noisy
expert demos as ``benchmarks/chunk_policy.py --env mujoco_push`` does.

For the flow-matching chunk policy (behaviour cloning from the scripted expert) and a PPO agent
(dense reward, small layout, a short budget) this script, for each seed:

1. rolls out the policy on the nominal env until it has ``--calibration`` (50) successful
   rollouts and calibrates FIPER on them (half fit RND-OE / ACE's cell widths, half set the
   conformal thresholds: cp_constant, delta 0.1);
2. rolls out ``--episodes`` (100) episodes under every shift of :mod:`rndx.envs.shifts`
   (labels: the env's own success / collision / time-out) and scores them;
3. reports TPR, TNR, accuracy, DT, TWA of FIPER (AND), RND-OE alone, ACE alone and OR, the
   false-alarm rate on held-out nominal successes, and an ablation over windows and threshold
   kinds computed from the same scores.

The chunk policy is scored once per predicted chunk (every ``execute`` = 8 steps, as FIPER
scores each chunk prediction); PPO predicts every step and is scored every step (chunks of
horizon 1). ``--chunk-every k`` scores the chunk policy every k steps instead (the monitor
then samples the B chunks itself between the policy's replans). Latency (one torch thread,
one observation, median of ``--calls``): the policy's own sampling of B = 64 chunks of
H = 16; the monitor's ADDED cost per scored step given those chunks (embedding + RND-OE +
ACE + window, thresholds and rule); and the added cost per control step, on average and at
the worst step (a scored step where the policy does not sample).

Trained policies are cached under ``runs/bench_monitor/`` (gitignored); delete it to retrain.

    python benchmarks/monitor.py [--task agv|bullet|push] [--episodes 100] [--calibration 50]
        [--seeds 0 1 2]

Bars (issue 5): FIPER's suite mean accuracy >= 0.85 and TWA >= 0.70, above each single score
and OR on accuracy; nominal false-alarm rate within delta; added latency <= 2 ms per step.
Writes ``benchmarks/results/<out>.{json,md}``, by default ``monitor`` (agv),
``monitor_bullet`` (bullet) or ``monitor_push`` (push); a run with other settings than the
defaults needs ``--out`` when those files exist. A policy whose nominal rollouts succeed too
rarely to collect the calibration successes (fewer than 1 in ``CALIBRATION_TRIES``) stops the
run with the count.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...`

from benchmarks._args import (  # noqa: E402
    RESULTS_RULE,
    at_least,
    command,
    nonnegative_int,
    positive_float,
    positive_int,
    refuse_overwrite,
)

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path("runs") / "bench_monitor"
# task -> env id, its Hydra env config, its kwargs for demos, demo horizon, default policies,
# cache folder, results name, table title
TASKS: dict[str, dict[str, Any]] = {
    "agv": {
        "env_id": "rndx/AGVWarehouse-v0",
        "env": None,
        "demo_kwargs": {"layout": "small"},
        "demo_steps": 500,
        "policies": ["chunk_flow", "ppo"],
        "cache": CACHE,
        "results": "monitor",
        "title": "the AGV shift suite",
    },
    "bullet": {
        "env_id": "rndx/BulletAGVWarehouse-v0",
        "env": "bullet_agv_warehouse",
        "demo_kwargs": {"layout": "small"},
        "demo_steps": 500,
        "policies": ["chunk_flow"],
        "cache": CACHE / "bullet",
        "results": "monitor_bullet",
        "title": "the AGV shift suite in PyBullet",
    },
    "push": {
        "env_id": "rndx/MujocoPush-v0",
        "env": "mujoco_push",
        "demo_kwargs": {"reward": "sparse"},
        "demo_steps": 200,
        "policies": ["chunk_flow"],
        "cache": CACHE / "push",
        "results": "monitor_push",
        "title": "the MuJoCo push shift suite",
    },
}
METHODS = {"FIPER (and)": "and", "RND-OE": "rnd_oe", "ACE": "ace", "OR": "or"}
POLICIES = ("chunk_flow", "ppo", "ppo_sde")  # the recipes of ensure_runs
# calibration gives up after this many nominal rollouts per needed success (a 5% success floor)
CALIBRATION_TRIES = 20


def calibration_successes(
    model, env_id: str, n_cal: int, seed: int, max_steps: int, kwargs: dict, det: bool
) -> tuple[list, int]:
    """Observation traces of the first ``n_cal`` successful nominal rollouts from the
    calibration seeds of ``seed``, and how many rollouts that took.

    :raises RuntimeError: when ``CALIBRATION_TRIES x n_cal`` rollouts gave fewer successes
        (the message says how many succeeded out of how many)."""
    from rndx.monitors.rollouts import run_rollouts

    cal_seed = 10_000 + 1000 * seed
    ok: list = []
    tried = 0
    while len(ok) < n_cal:
        if tried >= CALIBRATION_TRIES * n_cal:
            raise RuntimeError(
                f"seed {seed}: only {len(ok)} of {tried} nominal rollouts succeeded, "
                f"{n_cal} needed for --calibration; gave up after {CALIBRATION_TRIES} x "
                f"--calibration rollouts (success rate under 1/{CALIBRATION_TRIES})"
            )
        n = max(10, math.ceil(1.3 * (n_cal - len(ok))))
        rolls = run_rollouts(
            model, env_id, n, cal_seed + tried, max_steps, kwargs, deterministic=det
        )
        tried += n
        ok += [r.obs for r in rolls if r.success]
    return ok, tried


def ensure_runs(task: dict[str, Any], names: list[str]) -> dict[str, Path]:
    """Train (once) the policies ``names`` (chunk_flow, ppo, ppo_sde) of ``task`` with rndx.train;
    return their run dirs."""
    from hydra import compose, initialize_config_dir

    from rndx.demos import record
    from rndx.paths import config_dir
    from rndx.train import resume_config, train

    cache = task["cache"]
    cache.mkdir(parents=True, exist_ok=True)
    demos = cache / "demos.npz"
    if "chunk_flow" in names and not demos.is_file():
        record(task["env_id"], 200, 0, task["demo_steps"], task["demo_kwargs"], noise=0.3).save(
            demos
        )
    env = [f"env={task['env']}"] if task["env"] else []
    recipes = {
        "chunk_flow": [
            "agent=chunk_flow",
            f"demos={demos}",
            "eval.episodes=50",
        ],
        "ppo": [
            "agent=ppo",
            "+env.kwargs.reward=dense",
            "n_envs=16",
            "total_timesteps=300000",
            "eval.episodes=50",
            "eval.deterministic=false",
        ],
    }
    # the same PPO with gSDE: its Gaussian's std depends on the state, so ACE has a signal
    recipes["ppo_sde"] = [*recipes["ppo"], "+agent.ppo.use_sde=true"]
    runs = {}
    assert set(recipes) == set(POLICIES)
    for name in names:
        if name not in recipes:
            raise ValueError(f"--policies: unknown policy {name!r}; known: {sorted(recipes)}")
        overrides = [*env, *recipes[name]]
        run = cache / name
        if not (run / "model.zip").is_file():
            if (run / "checkpoints" / "latest.zip").is_file():  # a stopped cache run: finish it
                cfg = resume_config(run)
            else:  # nothing trained there yet: start clean (train() refuses a run's leftovers)
                shutil.rmtree(run, ignore_errors=True)
                with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                    cfg = compose(
                        "train", overrides=[*overrides, f"run_dir={run}", "progress_bar=false"]
                    )
            train(cfg)
        runs[name] = run
    return runs


def load_policy_run(run: Path) -> tuple[Any, Any, Any, dict, int, bool]:
    """A trained run's config, model, monitor adapter, env kwargs, episode limit and whether
    its evaluation acts deterministically."""
    from rndx.agents import load_agent
    from rndx.config import to_dict
    from rndx.evaluate import load_run_config
    from rndx.monitors.policies import as_monitorable

    cfg = load_run_config(run)
    model = load_agent(str(cfg.agent.algo), run / "model.zip")
    return (
        cfg,
        model,
        as_monitorable(model),
        to_dict(cfg.env.get("kwargs")),
        int(cfg.env.max_episode_steps),
        bool(cfg.eval.deterministic),
    )


def offline_alarms(cal, ev, window, kind, delta, rule, every):
    """Alarm steps of evaluation score traces ``ev`` with thresholds of ``kind`` and window
    ``window`` fitted on the calibration score traces ``cal`` (both raw (rnd, ace) pairs)."""
    import numpy as np

    from rndx.monitors.alarms import first_alarm, rule_holds
    from rndx.monitors.calibration import at_steps, cp_joint, thresholds
    from rndx.monitors.scores import window_sums

    rs = [window_sums(r, window) for r, _ in cal]
    as_ = [window_sums(a, window) for _, a in cal]
    if kind == "cp_joint" and rule == "and":
        th_r, th_a = cp_joint(rs, as_, delta)
    else:  # cp_joint calibrates the AND alarm; single scores and OR keep cp_constant
        single = "cp_constant" if kind == "cp_joint" else kind
        th_r, th_a = thresholds(rs, delta, single), thresholds(as_, delta, single)
    out = []
    for r, a in ev:
        t = np.arange(len(r))
        over_r = window_sums(r, window) > at_steps(th_r, t)
        over_a = window_sums(a, window) > at_steps(th_a, t)
        f = first_alarm(rule_holds(rule, over_r, over_a))
        out.append(None if f is None else f * every)
    return out


def _ok(flag: bool) -> str:
    return "PASS" if flag else "MISS"


def shift_metrics(per_seed, shifts, window, kind, rule, delta, every, max_steps):
    """Per shift, mean over seeds, of the metrics of one configuration (plus the false-alarm
    rate on successes, ``far``, and the success rate)."""
    import warnings

    import numpy as np

    from rndx.monitors.metrics import failure_metrics

    warnings.filterwarnings("ignore", "Mean of empty slice")  # NaN rates (no failures) are fine
    table: dict[str, dict[str, float]] = {}
    for shift in shifts:
        ms = []
        for s in per_seed:
            ev = s["shifts"][shift]
            steps = offline_alarms(s["cal"], ev["scores"], window, kind, delta, rule, every)
            m = failure_metrics(ev["failed"], steps, max_steps)
            ok_steps = [st for st, f in zip(steps, ev["failed"], strict=True) if not f]
            m["far"] = float(np.mean([st is not None for st in ok_steps])) if ok_steps else np.nan
            m["far_per_seed"] = m["far"]
            m["success_rate"] = 1.0 - float(np.mean(ev["failed"]))
            ms.append(m)
        table[shift] = {k: float(np.nanmean([m[k] for m in ms])) for k in ms[0]}
        table[shift]["far_max_seed"] = float(np.nanmax([m["far"] for m in ms]))
    return table


def latency(adapter, monitor, obs, calls: int) -> dict[str, float]:
    """Median ms: the policy's sampling of B chunks, and the monitor's added cost per step."""
    import numpy as np

    from rndx.monitors.monitor import MonitoredPolicy

    b = monitor.config.n_samples
    chunks = adapter.sample_chunks(obs, b)

    class GivenChunks:  # the chunks the policy sampled anyway: only the monitor's work is timed
        def __init__(self, inner):
            self.inner = inner

        def embed(self, o):
            return self.inner.embed(o)

        def sample_chunks(self, o, n):
            return chunks

        def predict(self, *a, **k):
            return self.inner.predict(*a, **k)

        def reset(self, idx=None):
            pass

    def timed(fn):
        for _ in range(20):
            fn()
        ts = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return 1e3 * float(np.median(ts))

    sample_ms = timed(lambda: adapter.sample_chunks(obs, b))
    mp = MonitoredPolicy(GivenChunks(adapter), monitor)
    mp.monitor.config.score_every = 1  # time a scored step
    added_ms = timed(lambda: mp.observe(obs))
    full = MonitoredPolicy(adapter, monitor)
    full_ms = timed(lambda: full.observe(obs))
    return {
        "sample_ms": sample_ms,
        "added_ms": added_ms,
        "full_ms": full_ms,
        "B": b,
        "H": int(chunks.shape[-2]),
    }


def monitor_config(args: argparse.Namespace, window: int, **more: Any) -> Any:
    """The MonitorConfig of the command line's settings for one window (+ ``more``)."""
    from rndx.monitors.monitor import MonitorConfig

    return MonitorConfig(
        delta=args.delta,
        window=window,
        threshold=args.threshold,
        n_samples=args.n_samples,
        ace_factor=args.ace_factor,
        **more,
    )


def main() -> None:
    import numpy as np
    import torch

    from rndx.envs.shifts import get_shift, known_shifts, shifts_for
    from rndx.monitors.monitor import calibrate, score_traces
    from rndx.monitors.rollouts import run_rollouts

    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=RESULTS_RULE.format(flag="--out")
    )
    p.add_argument("--task", choices=sorted(TASKS), default="agv")
    p.add_argument(
        "--episodes", type=positive_int, default=100, help="evaluation episodes per shift"
    )
    p.add_argument(
        "--calibration", type=positive_int, default=50, help="successful calibration rollouts"
    )
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shifts", nargs="+", default=None, help="default: all of the task's")
    p.add_argument(
        "--policies", nargs="+", choices=POLICIES, default=None, help="default: the task's"
    )
    p.add_argument("--delta", type=float, default=0.1, help="target false-alarm rate, in (0, 1)")
    p.add_argument("--n-samples", type=at_least(2), default=64)
    p.add_argument("--calls", type=positive_int, default=300, help="timed calls for latency")
    p.add_argument(
        "--chunk-window", type=positive_int, default=2, help="window (scored steps), chunk"
    )
    p.add_argument("--ppo-window", type=positive_int, default=10, help="window (scored steps), PPO")
    p.add_argument(
        "--chunk-every",
        type=positive_int,
        default=None,
        help="score the chunk policy every k steps (default: once per chunk, k = execute); "
        "between its replans the monitor samples the B chunks itself",
    )
    p.add_argument("--threshold", default="cp_constant", help="threshold kind of the main table")
    p.add_argument(
        "--ace-factor", type=positive_float, default=0.03, help="ACE cell width / calibration range"
    )
    p.add_argument("--out", default=None, help="results name (default: the task's; see below)")
    args = p.parse_args()
    cmd = command("monitor.py", p, args, always=("task", "episodes", "calibration", "seeds"))
    task = TASKS[args.task]
    env_id = task["env_id"]
    # settings the monitor refuses, and too few calibration rollouts for delta: before any work
    for window in (args.chunk_window, args.ppo_window):
        try:
            need = monitor_config(args, window).min_rollouts()
        except ValueError as exc:
            p.error(str(exc))
        if args.calibration < need:
            p.error(
                f"--calibration {args.calibration} is too few for --delta {args.delta} with "
                f"--threshold {args.threshold}: the monitor needs at least {need} successful "
                "calibration rollouts (rndx.monitors.MonitorConfig.min_rollouts)"
            )
    shifts = args.shifts or known_shifts(env_id)  # into args after the results rule's check
    for shift in shifts:
        try:
            get_shift(shift, env_id)  # an unknown name fails before any training
        except ValueError as exc:
            p.error(f"--shifts: {exc}")
    out = args.out or task["results"]
    refuse_overwrite(
        p,
        args,
        [RESULTS / f"{out}.json", RESULTS / f"{out}.md"],
        named=args.out is not None,
        flag="--out",
        skip=("task",),
    )
    args.shifts = shifts
    args.policies = args.policies or task["policies"]
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    runs = ensure_runs(task, args.policies)
    report: dict[str, Any] = {"args": vars(args), "env_id": env_id, "policies": {}}
    lines: list[str] = []

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    emit(f"## FIPER runtime failure prediction on {task['title']}\n")
    emit(
        f"- machine: {platform.machine()}, {os.cpu_count()} cores (shared, loaded), torch "
        f"{torch.__version__}, 1 torch thread"
    )
    emit(f"- command: `{cmd}`")
    suite = shifts_for(env_id)
    emit(
        f"- env {env_id}; shifts: "
        + "; ".join(
            f"{n} ({suite[n].description}{', benign' if suite[n].benign else ''})"
            for n in args.shifts
        )
    )
    for name in args.policies:
        run = runs[name]
        cfg, model, adapter, kwargs, max_steps, det = load_policy_run(run)
        execute = int(getattr(model, "execute", 1))  # steps between the policy's own samplings
        every = args.chunk_every if execute > 1 and args.chunk_every else execute
        window = args.chunk_window if execute > 1 else args.ppo_window
        per_seed = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            try:
                ok, tried = calibration_successes(
                    model, env_id, args.calibration, seed, max_steps, kwargs, det
                )
            except RuntimeError as exc:
                raise SystemExit(f"benchmarks/monitor.py: {name} {exc}") from None
            mcfg = monitor_config(args, window, score_every=every, seed=seed)
            mon, cal_scores = calibrate(model, ok[: args.calibration], mcfg, return_scores=True)
            shifts = {}
            for shift in args.shifts:
                rolls = run_rollouts(
                    model,
                    env_id,
                    args.episodes,
                    20_000 + 1000 * seed,
                    max_steps,
                    kwargs,
                    shift=shift,
                    deterministic=det,
                )
                shifts[shift] = {
                    "failed": [not r.success for r in rolls],
                    "scores": score_traces(mon, adapter, [r.obs for r in rolls]),
                }
            per_seed.append(
                {
                    "seed": seed,
                    "cal": cal_scores,
                    "shifts": shifts,
                    "cal_tried": tried,
                    "monitor": mon,
                }
            )
            emit(
                f"- {name} seed {seed}: calibration {args.calibration} successes of {tried} "
                f"rollouts; {len(args.shifts)} shifts x {args.episodes} episodes; "
                f"{time.perf_counter() - t0:.0f} s"
            )

        import pickle

        with open(task["cache"] / f"scores_{name}.pkl", "wb") as fh:  # for offline analysis
            pickle.dump(
                {
                    "every": every,
                    "max_steps": max_steps,
                    "per_seed": [
                        {k: v for k, v in sd.items() if k != "monitor"} for sd in per_seed
                    ],
                },
                fh,
            )

        def suite_mean(table, key):
            vals = [table[s][key] for s in args.shifts]
            return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")

        emit(
            f"\n### {name}: scored every {every} step(s)"
            f", window {window} scored steps, {args.threshold}, delta {args.delta}, "
            f"B {args.n_samples}, ACE cells {args.ace_factor} x range, "
            f"mean over seeds {args.seeds}\n"
        )
        emit("| shift | success | method | TPR | TNR | accuracy | DT | TWA |")
        emit("|---|---:|---|---:|---:|---:|---:|---:|")
        main_tables = {
            m: shift_metrics(
                per_seed, args.shifts, window, args.threshold, r, args.delta, every, max_steps
            )
            for m, r in METHODS.items()
        }

        def fmt(x):
            return "n/a" if not np.isfinite(x) else f"{x:.2f}"

        for shift in args.shifts:
            for m in METHODS:
                t = main_tables[m][shift]
                emit(
                    f"| {shift} | {t['success_rate']:.2f} | {m} | {fmt(t['tpr'])} | "
                    f"{fmt(t['tnr'])} | {fmt(t['accuracy'])} | {fmt(t['dt'])} | {fmt(t['twa'])} |"
                )
        summary = {}
        for m in METHODS:
            summary[m] = {
                k: suite_mean(main_tables[m], k) for k in ("tpr", "tnr", "accuracy", "dt", "twa")
            }
            s = summary[m]
            emit(
                f"| **suite mean** | | {m} | {fmt(s['tpr'])} | {fmt(s['tnr'])} | "
                f"{fmt(s['accuracy'])} | {fmt(s['dt'])} | {fmt(s['twa'])} |"
            )
        far_nominal = (
            [
                shift_metrics(
                    [sd], ["nominal"], window, args.threshold, "and", args.delta, every, max_steps
                )["nominal"]["far"]
                for sd in per_seed
            ]
            if "nominal" in args.shifts
            else []
        )

        emit("\nAblation (suite means over the same scores; thresholds refitted per config):\n")
        emit(
            "| window | thresholds | FIPER acc | FIPER TWA | RND-OE acc | ACE acc | OR acc "
            "| FIPER nominal FAR |"
        )
        emit("|---:|---|---:|---:|---:|---:|---:|---:|")
        ablation = []
        for w in sorted({max(1, window // 4), max(1, window // 2), window, 2 * window}):
            for kind in ("cp_constant", "cp_joint", "cp_band", "time_varying"):
                try:
                    tabs = {
                        m: shift_metrics(
                            per_seed, args.shifts, w, kind, r, args.delta, every, max_steps
                        )
                        for m, r in METHODS.items()
                    }
                except ValueError as exc:  # too few threshold rollouts for this kind
                    emit(f"| {w} | {kind} | {exc} |||||")
                    continue
                row = {
                    "window": w,
                    "kind": kind,
                    **{f"{m}_acc": suite_mean(tabs[m], "accuracy") for m in METHODS},
                    "fiper_twa": suite_mean(tabs["FIPER (and)"], "twa"),
                    "fiper_far_nominal": tabs["FIPER (and)"]
                    .get("nominal", {})
                    .get("far", float("nan")),
                }
                ablation.append(row)
                emit(
                    f"| {w} | {kind} | {row['FIPER (and)_acc']:.2f} | {row['fiper_twa']:.2f} | "
                    f"{row['RND-OE_acc']:.2f} | {row['ACE_acc']:.2f} | {row['OR_acc']:.2f} | "
                    f"{row['fiper_far_nominal']:.3f} |"
                )
        lat = latency(adapter, per_seed[0]["monitor"], ok[0][0], args.calls)
        # per step, over one period of the policy's replanning: the scored steps that fall on
        # a replan use the chunks the policy samples anyway; the others sample them too
        period = math.lcm(execute, every)
        scored = period // every
        shared = period // math.lcm(execute, every) if execute > 1 else scored
        lat["peak_ms"] = lat["added_ms"] + (lat["sample_ms"] if scored > shared else 0.0)
        lat["mean_ms"] = (scored * lat["added_ms"] + (scored - shared) * lat["sample_ms"]) / period
        fi = summary["FIPER (and)"]
        beats = all(fi["accuracy"] > summary[m]["accuracy"] for m in METHODS if m != "FIPER (and)")
        emit(
            f"\nLatency (1 observation, B {lat['B']}, H {lat['H']}, median of {args.calls}): "
            f"policy's own sampling {lat['sample_ms']:.2f} ms; monitor ADDED per scored step "
            f"(embedding + RND-OE + ACE + window/threshold/rule, given the sampled chunks) "
            f"{lat['added_ms']:.2f} ms; monitor step including a separate sampling "
            f"{lat['full_ms']:.2f} ms. Scored every {every} step(s), the policy samples every "
            f"{execute}: added cost per step {lat['mean_ms']:.2f} ms on average, "
            f"{lat['peak_ms']:.2f} ms at most (a scored step where the policy does not sample)\n"
        )
        emit(
            f"- bar: FIPER suite accuracy >= 0.85: {_ok(fi['accuracy'] >= 0.85)} "
            f"({fi['accuracy']:.2f})"
        )
        emit(f"- bar: FIPER suite TWA >= 0.70: {_ok(fi['twa'] >= 0.70)} ({fi['twa']:.2f})")
        emit(
            f"- bar: FIPER beats RND-OE, ACE and OR on accuracy: {'PASS' if beats else 'MISS'} ("
            + ", ".join(f"{m} {summary[m]['accuracy']:.2f}" for m in METHODS)
            + ")"
        )
        if far_nominal:
            mean_far = float(np.mean(far_nominal))
            per = ", ".join(f"{f:.3f}" for f in far_nominal)
            emit(
                f"- bar: FIPER false-alarm rate on held-out nominal successes <= delta "
                f"{args.delta}: {_ok(mean_far <= args.delta)} (mean {mean_far:.3f}; per seed {per})"
            )
        for shift in args.shifts:  # benign shifts: alarms on their successes are false alarms
            if shift != "nominal" and suite[shift].benign:
                fars = [
                    shift_metrics(
                        [sd], [shift], window, args.threshold, "and", args.delta, every, max_steps
                    )[shift]["far"]
                    for sd in per_seed
                ]
                emit(
                    f"- FIPER false-alarm rate on successes under the benign shift {shift}: "
                    f"mean {float(np.nanmean(fars)):.3f}; per seed "
                    + ", ".join(f"{f:.3f}" for f in fars)
                )
        emit(
            f"- bar: added latency <= 2 ms per step: {_ok(lat['mean_ms'] <= 2.0)} on average "
            f"({lat['mean_ms']:.2f} ms), {_ok(lat['peak_ms'] <= 2.0)} at the worst step "
            f"({lat['peak_ms']:.2f} ms)"
        )
        report["policies"][name] = {
            "every": every,
            "window": window,
            "summary": summary,
            "per_shift": {m: main_tables[m] for m in METHODS},
            "far_nominal": far_nominal,
            "ablation": ablation,
            "latency": lat,
            "calibration_rollouts": [s["cal_tried"] for s in per_seed],
        }
    emit(f"\n- total wall time {time.perf_counter() - t_start:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    from rndx.utils.io import atomic_write_json, atomic_write_text

    atomic_write_json(RESULTS / f"{out}.json", report)
    atomic_write_text(RESULTS / f"{out}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
