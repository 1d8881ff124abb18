"""Levers on FIPER's accuracy for the chunk policy on the AGV shift suite (issue 5 follow-up).

``benchmarks/monitor.py`` scores the chunk policy once per predicted chunk (every 8 steps),
ACE over all H = 16 predicted steps with cells of 0.03 x the calibration range, RND-OE on the
encoder output fitted for 50 epochs on half of the 50 calibration rollouts. This script rolls
the same episodes out once (same calibration and evaluation seeds as ``monitor.py``), scores
every ``--every`` (2) steps with every variant below, and evaluates each configuration
offline on those scores (the monitor only watches, so this equals online monitoring):

- scoring frequency: every 2, 4 or 8 steps (subsets of the every-2 scores); between the
  policy's replans (every 8) the monitor samples the B chunks itself;
- ACE: cell factor 0.03 / 0.1 / 0.3 of the calibration range; entropy over the first
  k predicted steps of the chunk (k in 1, 4, 16 in the grid; 1, 2, 4, 8, 16 one at a time);
- RND-OE: its input (encoder output ``emb``, raw observation ``obs``, both ``emb+obs``);
  one at a time: predictor epochs 200 instead of 50, and 15 instead of 25 of the 50
  calibration rollouts fitting the scores (35 setting thresholds);
- window (4, 8, 16, 32 env steps, counted in scored steps) and threshold kind
  (``cp_constant``, ``cp_joint``).

The grid is every x factor x k x input x kind x window, plus the one-at-a-time sweeps.
Every configuration keeps cp_constant or cp_joint thresholds from successful rollouts only
(the conformal guarantee) with delta 0.1. Select on seeds 0-2 (``--seeds 0 1 2``), report the
selected configurations on fresh seeds 3-5 (``--seeds 3 4 5 --only "every=2 window=2
kind=cp_joint" ...``: each a set of key=value changes from the default).

    python benchmarks/monitor_levers.py --seeds 0 1 2 [--episodes 100] [--top 25]

Rollouts and scores are cached under ``runs/bench_monitor/levers/`` (gitignored), one file
per seed named by a hash of everything they depend on (the trained policy file's bytes, the
env, its shifts, episode cap, calibration and evaluation counts, ``--every``, B and the
scoring variants below), so a run with other settings rolls out afresh; delete the folder
after changing rndx's env or shift code. Writes
``benchmarks/results/<out>.{json,md}``, by default ``monitor_levers_<seeds>[_only][_B<B>]``;
a run with other settings than the defaults (those in the name aside) needs ``--out`` when
those files exist.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import pickle
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._args import (  # noqa: E402
    RESULTS_RULE,
    at_least,
    command,
    nonnegative_int,
    positive_int,
    refuse_overwrite,
)
from benchmarks.monitor import (  # noqa: E402
    TASKS,
    calibration_successes,
    ensure_runs,
    load_policy_run,
)

RESULTS = Path(__file__).resolve().parent / "results"
FACTORS = (0.03, 0.1, 0.3)
FIRST_K = (1, 2, 4, 8, 16)
RND_INPUTS = ("emb", "obs", "emb+obs")
RND_EPOCHS = (50, 200)
SPLITS = (25, 15)  # calibration rollouts that fit the scores (the rest set thresholds)
# (fitting rollouts, input, epochs) of the RND-OE pairs fitted
RND_VARIANTS = (
    (25, "emb", 50),
    (25, "obs", 50),
    (25, "emb+obs", 50),
    (25, "emb", 200),
    (15, "emb", 50),
)
BLOCK = 256
DELTA = 0.1
KINDS = ("cp_constant", "cp_joint")  # the threshold kinds of the grid


def min_calibration(delta: float = DELTA) -> int:
    """Fewest calibration successes the grid needs: the most rollouts fitting the scores
    (``SPLITS``) plus the threshold rollouts that rndx.monitors' smallest calibration for
    ``delta`` sets thresholds on (``MonitorConfig.min_rollouts`` less its fitting share),
    for each threshold kind of the grid."""
    from rndx.monitors.monitor import MonitorConfig

    def threshold_rollouts(kind: str) -> int:
        cfg = MonitorConfig(delta=delta, threshold=kind)
        n = cfg.min_rollouts()
        return n - cfg.n_fit(n)

    return max(SPLITS) + max(threshold_rollouts(k) for k in KINDS)


def cache_key(model_file: Path, seed: int, args, env_id, shifts, max_steps, kwargs, det) -> dict:
    """Everything the cached rollouts and scores of ``seed`` depend on."""
    from rndx.envs.shifts import shifts_for

    suite = shifts_for(env_id)
    return {
        "model_sha256": hashlib.sha256(Path(model_file).read_bytes()).hexdigest(),
        "env_id": env_id,
        "env_kwargs": kwargs,
        "max_steps": max_steps,
        "deterministic": det,
        "shifts": {s: suite[s].description for s in shifts},
        "seed": seed,
        "calibration": args.calibration,
        "episodes": args.episodes,
        "every": args.every,
        "n_samples": args.n_samples,
        "scoring": {"splits": SPLITS, "factors": FACTORS, "rnd": RND_VARIANTS},
    }


def cache_file(cache: Path, key: dict) -> Path:
    """The cache file of ``key``: readable settings and a hash of all of them."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    b = "" if key["n_samples"] == 64 else f"_B{key['n_samples']}"
    return cache / (
        f"seed{key['seed']}_every{key['every']}_ep{key['episodes']}_cal{key['calibration']}"
        f"{b}_{digest[:16]}.pkl"
    )


def rollouts(model, env_id, seed, n_cal, episodes, shifts, max_steps, kwargs, det):
    """Calibration successes and evaluation rollouts exactly as ``benchmarks/monitor.py``."""
    from rndx.monitors.rollouts import run_rollouts

    ok, tried = calibration_successes(model, env_id, n_cal, seed, max_steps, kwargs, det)
    ev = {}
    for shift in shifts:
        rolls = run_rollouts(
            model,
            env_id,
            episodes,
            20_000 + 1000 * seed,
            max_steps,
            kwargs,
            shift=shift,
            deterministic=det,
        )
        ev[shift] = {"obs": [r.obs for r in rolls], "failed": [not r.success for r in rolls]}
    return {"cal": ok[:n_cal], "cal_tried": tried, "eval": ev}


def per_step_entropy(chunks, widths):
    """(n, H) entropy of each predicted step (rndx.monitors.scores.ace on one step at a time)."""
    import numpy as np

    from rndx.monitors.scores import ace

    return np.stack([ace(chunks[:, :, h : h + 1, :], widths) for h in range(chunks.shape[2])], 1)


def score_all(adapter, data, every, n_samples, seed):
    """Per trace, at steps 0, every, 2 every, ...: per-step ACE entropies (n, H) for each
    (split, factor), and RND-OE scores for each (split, input, epochs)."""
    import numpy as np
    import torch

    from rndx.monitors.scores import RNDOE, cell_widths

    torch.manual_seed(seed)
    adapter.policy.generator.manual_seed(10_000 + seed)
    cal = [np.asarray(t, np.float32) for t in data["cal"]]
    traces = cal + [t for s in data["eval"].values() for t in s["obs"]]
    sub = [t[::every] for t in traces]
    flat = np.concatenate(sub)
    cuts = np.cumsum([len(t) for t in sub])[:-1]

    # ACE widths: factor x range of chunks sampled on the fitting rollouts (scored steps)
    widths = {}
    for n_fit in SPLITS:
        fit_obs = np.concatenate([t[::every] for t in cal[:n_fit]])
        ch = np.concatenate(
            [
                adapter.sample_chunks(fit_obs[s : s + BLOCK], n_samples)
                for s in range(0, len(fit_obs), BLOCK)
            ]
        )
        for f in FACTORS:
            widths[(n_fit, f)] = cell_widths(ch, f)
    ent = {k: np.empty((len(flat), adapter.horizon)) for k in widths}
    emb = np.empty((len(flat), adapter.embed(flat[:1]).shape[1]), np.float32)
    for s in range(0, len(flat), BLOCK):
        x = flat[s : s + BLOCK]
        ch = adapter.sample_chunks(x, n_samples)
        emb[s : s + BLOCK] = adapter.embed(x)
        for k, w in widths.items():
            ent[k][s : s + BLOCK] = per_step_entropy(ch, w)

    # RND-OE inputs; fitted on ALL steps of the fitting rollouts (as rndx.monitors.calibrate)
    def inputs(obs, e):
        return {"emb": e, "obs": obs, "emb+obs": np.concatenate([e, obs], 1)}

    rnd = {}
    all_in = inputs(flat, emb)
    for n_fit, name, ep in RND_VARIANTS:
        fit_obs = np.concatenate(cal[:n_fit])
        fit_in = inputs(fit_obs, adapter.embed(fit_obs))
        m = RNDOE(fit_in[name].shape[1], seed=seed)
        m.fit(fit_in[name], epochs=ep, seed=seed)
        rnd[(n_fit, name, ep)] = m.score(all_in[name])

    def split(a):
        return np.split(a, cuts)

    out = {
        "ent": {k: split(v) for k, v in ent.items()},
        "rnd": {k: split(v) for k, v in rnd.items()},
    }
    out["n_cal"] = len(cal)
    return out


def _padded(traces):
    import numpy as np

    lens = np.array([len(t) for t in traces])
    out = np.zeros((len(traces), lens.max()))
    for i, t in enumerate(traces):
        out[i, : len(t)] = t
    return out, lens


def evaluate(data, sc, cfg, every, max_steps, delta=DELTA):
    """Metrics per shift and rule of one configuration on one seed (vectorised over traces)."""
    import numpy as np

    from rndx.monitors.calibration import at_steps, cp_joint, thresholds
    from rndx.monitors.metrics import failure_metrics
    from rndx.monitors.scores import window_sums

    k = cfg["every"] // every  # subsample of the every-`every` scores
    n_fit, w = cfg["n_fit"], cfg["window"]
    ent = sc["ent"][(n_fit, cfg["factor"])]
    rnd = sc["rnd"][(n_fit, cfg["rnd_input"], cfg["epochs"])]
    r_tr = [r[::k] for r in rnd]
    if cfg["ace_every"]:  # ACE only where the policy replans (every 8), held in between
        ka, rep = cfg["ace_every"] // every, cfg["ace_every"] // cfg["every"]
        a_tr = [
            np.repeat(e[::ka, : cfg["first_k"]].mean(1), rep)[: len(r)]
            for e, r in zip(ent, r_tr, strict=True)
        ]
    else:
        a_tr = [e[::k, : cfg["first_k"]].mean(1) for e in ent]
    n_cal = sc["n_cal"]
    rs = [window_sums(r_tr[i], w) for i in range(n_fit, n_cal)]
    as_ = [window_sums(a_tr[i], w) for i in range(n_fit, n_cal)]
    th_r, th_a = thresholds(rs, delta, "cp_constant"), thresholds(as_, delta, "cp_constant")
    jr, ja = cp_joint(rs, as_, delta) if cfg["kind"] == "cp_joint" else (th_r, th_a)
    R, lens = _padded(r_tr[n_cal:])
    A, _ = _padded(a_tr[n_cal:])
    t = np.arange(R.shape[1])
    live = t[None, :] < lens[:, None]
    WR, WA = window_sums(R, w), window_sums(A, w)
    over = {
        "rnd_oe": (at_steps(th_r, t) < WR) & live,
        "ace": (at_steps(th_a, t) < WA) & live,
    }
    over["or"] = over["rnd_oe"] | over["ace"]
    over["and"] = (at_steps(jr, t) < WR) & (at_steps(ja, t) < WA) & live
    first = {}
    for rule, h in over.items():
        any_ = h.any(1)
        first[rule] = [int(i) * cfg["every"] if a else None for i, a in zip(h.argmax(1), any_)]
    res = {}
    pos = 0
    for shift, ev in data["eval"].items():
        n = len(ev["obs"])
        res[shift] = {}
        for rule in over:
            steps = first[rule][pos : pos + n]
            m = failure_metrics(ev["failed"], steps, max_steps)
            ok = [s for s, f in zip(steps, ev["failed"], strict=True) if not f]
            m["far"] = float(np.mean([s is not None for s in ok])) if ok else float("nan")
            res[shift][rule] = m
        pos += n
    return res


def configs(every_choices):
    base = {
        "every": 8,
        "window": 2,
        "factor": 0.03,
        "first_k": 16,
        "rnd_input": "emb",
        "epochs": 50,
        "n_fit": 25,
        "kind": "cp_constant",
        "ace_every": 0,
    }
    grid = {
        "every": every_choices,
        "factor": FACTORS,
        "first_k": (1, 4, 16),
        "rnd_input": RND_INPUTS,
        "kind": ("cp_constant", "cp_joint"),
    }
    out = []
    keys = list(grid)
    for vals in itertools.product(*grid.values()):
        c = dict(base, **dict(zip(keys, vals, strict=True)))
        # window in env steps 8, 16, 32 (and 4 for finer scoring) -> scored steps
        for wsteps in (4, 8, 16, 32):
            if wsteps < c["every"]:
                continue
            out.append(dict(c, window=wsteps // c["every"]))
    # the remaining levers one at a time from the default (all frequencies)
    for e in every_choices:
        for lever, vals in (("first_k", FIRST_K), ("epochs", RND_EPOCHS), ("n_fit", SPLITS)):
            for v in vals:
                for wsteps in (8, 16):
                    if wsteps >= e:
                        out.append(dict(base, every=e, window=wsteps // e, **{lever: v}))
    # RND-OE every 2 or 4 steps, ACE only where the policy samples anyway (every 8), held
    for e, f, kind in itertools.product((2, 4), FACTORS, ("cp_constant", "cp_joint")):
        for wsteps in (4, 8, 16):
            if wsteps >= e and e in every_choices:
                c = dict(base, every=e, window=wsteps // e, factor=f, kind=kind, ace_every=8)
                out.append(c)
    return base, out


def name(c):
    return (
        f"every={c['every']} w={c['window']} f={c['factor']} k={c['first_k']} "
        f"rnd={c['rnd_input']}/{c['epochs']} fit={c['n_fit']} {c['kind']}"
        + (f" ace_every={c['ace_every']}" if c["ace_every"] else "")
    )


def main() -> None:
    import numpy as np
    import torch

    from rndx.envs.shifts import known_shifts

    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=RESULTS_RULE.format(flag="--out")
    )
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episodes", type=positive_int, default=100)
    p.add_argument(
        "--calibration",
        type=positive_int,
        default=50,
        help=f"successful calibration rollouts (at least {min_calibration()})",
    )
    p.add_argument(
        "--every",
        type=int,
        choices=(1, 2, 4, 8),
        default=2,
        help="finest scoring period (steps; divides the policy's 8)",
    )
    p.add_argument("--n-samples", type=at_least(2), default=64)
    p.add_argument("--top", type=nonnegative_int, default=25)
    p.add_argument("--only", nargs="*", default=None, help="config names to report (k=v ...)")
    p.add_argument(
        "--out",
        default=None,
        help="results name (default: monitor_levers_<seeds>[_only][_B<B>]; see below)",
    )
    args = p.parse_args()
    cmd = command("monitor_levers.py", p, args, always=("seeds",))
    need = min_calibration()
    if args.calibration < need:
        p.error(
            f"--calibration {args.calibration}: the grid fits the scores on up to "
            f"{max(SPLITS)} calibration rollouts and sets delta={DELTA} thresholds "
            f"({', '.join(KINDS)}) on the rest, so it needs at least {need} "
            "(rndx.monitors.MonitorConfig.min_rollouts)"
        )
    tag = "_".join(map(str, args.seeds)) + ("_only" if args.only else "")
    tag += "" if args.n_samples == 64 else f"_B{args.n_samples}"
    out = args.out or f"monitor_levers_{tag}"
    refuse_overwrite(
        p,
        args,
        [RESULTS / f"{out}.md", RESULTS / f"{out}.json"],
        named=args.out is not None,
        flag="--out",
        skip=("seeds", "only", "n_samples"),
    )
    base, _ = configs((8,))
    wanted = []
    for o in args.only or []:  # bad k=v pairs fail here, before any rollout
        try:
            pairs = dict(kv.split("=", 1) for kv in o.split())
            wanted.append(dict(base, **{k: type(base[k])(v) for k, v in pairs.items()}))
        except (KeyError, ValueError) as exc:
            p.error(f"--only {o!r}: {exc!r}; keys: {', '.join(base)}")
    torch.set_num_threads(1)
    task = TASKS["agv"]
    env_id = task["env_id"]
    shifts = known_shifts(env_id)
    run = ensure_runs(task, ["chunk_flow"])["chunk_flow"]
    cfg, model, adapter, kwargs, max_steps, det = load_policy_run(run)
    cache = task["cache"] / "levers"
    cache.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in args.seeds:
        key = cache_key(run / "model.zip", seed, args, env_id, shifts, max_steps, kwargs, det)
        f = cache_file(cache, key)
        saved = None
        if f.is_file():
            with open(f, "rb") as fh:
                saved = pickle.load(fh)
        if saved is not None and saved.get("key") == key:
            data, sc = saved["data"], saved["sc"]
        else:
            t0 = time.perf_counter()
            data = rollouts(
                model, env_id, seed, args.calibration, args.episodes, shifts, max_steps, kwargs, det
            )
            t1 = time.perf_counter()
            sc = score_all(adapter, data, args.every, args.n_samples, seed)
            print(
                f"seed {seed}: rollouts {t1 - t0:.0f} s, scoring {time.perf_counter() - t1:.0f} s",
                flush=True,
            )
            with open(f, "wb") as fh:
                pickle.dump({"key": key, "data": data, "sc": sc}, fh)
        per_seed.append((data, sc))

    every_choices = tuple(e for e in (2, 4, 8) if e % args.every == 0)
    base, grid = configs(every_choices)
    if args.only:
        grid = [base] + wanted

    def summarise(c):
        per = [evaluate(d, s, c, args.every, max_steps) for d, s in per_seed]
        out = {}
        for rule in ("and", "rnd_oe", "ace", "or"):
            for key in ("accuracy", "twa", "tpr", "tnr", "dt"):
                out[f"{rule}_{key}"] = float(
                    np.nanmean([np.nanmean([r[s][rule][key] for r in per]) for s in shifts])
                )
            out[f"{rule}_far_nominal"] = [r["nominal"][rule]["far"] for r in per]
            out[f"{rule}_acc_per_seed"] = [
                float(np.nanmean([r[s][rule]["accuracy"] for s in shifts])) for r in per
            ]
        out["per_shift"] = {
            s: {
                rule: {
                    k: float(np.nanmean([r[s][rule][k] for r in per]))
                    for k in ("tpr", "tnr", "accuracy", "twa", "dt")
                }
                for rule in ("and", "rnd_oe", "ace", "or")
            }
            for s in shifts
        }
        return out

    t0 = time.perf_counter()
    rows = []
    seen = set()
    for c in [base, *grid]:
        key = name(c)
        if key in seen:
            continue
        seen.add(key)
        rows.append((c, summarise(c)))
    print(f"{len(rows)} configurations evaluated in {time.perf_counter() - t0:.0f} s", flush=True)

    lines = [
        f"## FIPER levers, chunk policy, AGV suite, seeds {args.seeds}\n",
        f"- command: `{cmd}`",
        f"- {args.episodes} episodes x {len(shifts)} shifts per seed; calibration "
        f"{args.calibration} successes; delta {DELTA}; B {args.n_samples}; suite means over shifts "
        "(means over seeds per shift); window counted in scored steps\n",
        "| config | FIPER acc | FIPER TWA | FIPER TPR | FIPER TNR | RND-OE acc | ACE acc "
        "| OR acc | FIPER FAR nominal (per seed) | FIPER acc (per seed) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]

    def row(c, s):
        far = ", ".join(f"{x:.2f}" for x in s["and_far_nominal"])
        return (
            f"| {name(c)} | {s['and_accuracy']:.3f} | {s['and_twa']:.3f} | {s['and_tpr']:.2f} | "
            f"{s['and_tnr']:.2f} | {s['rnd_oe_accuracy']:.3f} | {s['ace_accuracy']:.3f} | "
            f"{s['or_accuracy']:.3f} | {far} | "
            + ", ".join(f"{x:.2f}" for x in s["and_acc_per_seed"])
            + " |"
        )

    lines.append(row(*rows[0]) + " (benchmark default)")
    ranked = sorted(rows[1:], key=lambda cs: -cs[1]["and_accuracy"])
    for c, s in ranked[: args.top]:
        lines.append(row(c, s))
    # one-lever-at-a-time from the default
    lines.append("\nOne lever at a time from the default (best value of each lever):\n")
    lines.append(lines[3])
    lines.append(lines[4])
    levers = ("every", "factor", "first_k", "rnd_input", "epochs", "n_fit", "kind", "ace_every")
    for lever in levers:
        cands = [
            (c, s)
            for c, s in rows
            if all(c[k] == base[k] for k in base if k not in (lever, "window", "every"))
            and c[lever] != base[lever]
            and (lever in ("every", "ace_every") or c["every"] == base["every"])
        ]
        for c, s in sorted(cands, key=lambda cs: -cs[1]["and_accuracy"])[:3]:
            lines.append(row(c, s) + f" [{lever}]")
    best_c, best_s = ranked[0] if ranked else rows[0]
    lines.append(f"\nPer shift, best configuration {name(best_c)}:\n")
    lines.append("| shift | method | TPR | TNR | accuracy | DT | TWA |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for s in shifts:
        for rule, lab in (
            ("and", "FIPER (and)"),
            ("rnd_oe", "RND-OE"),
            ("ace", "ACE"),
            ("or", "OR"),
        ):
            m = best_s["per_shift"][s][rule]
            lines.append(
                f"| {s} | {lab} | {m['tpr']:.2f} | {m['tnr']:.2f} | {m['accuracy']:.2f} | "
                f"{m['dt']:.2f} | {m['twa']:.2f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    from rndx.utils.io import atomic_write_text

    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{out}.md", text)
    report = {
        "args": vars(args),
        "rows": [
            {"config": c, **{k: v for k, v in s.items() if k != "per_shift"}} for c, s in rows
        ],
    }

    # one row per line: hundreds of configurations, kept small in the repository
    def rounded(x):
        if isinstance(x, float):
            return round(x, 4)
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return {k: rounded(v) for k, v in x.items()} if isinstance(x, dict) else x

    body = ",\n".join(json.dumps(rounded(r), sort_keys=True) for r in report["rows"])
    atomic_write_text(
        RESULTS / f"{out}.json",
        f'{{"args": {json.dumps(report["args"], sort_keys=True)},\n"rows": [\n{body}\n]}}\n',
    )


if __name__ == "__main__":
    main()
