"""The RND-AGV paper's comparison (arXiv 2404.12594): PPO vs PPO+RND (and PPO+RDD) in its
four warehouse scenes, the same budget for every run.

    python benchmarks/paper_agv.py                     # 4 scenes x 3 agents x 3 seeds
    python benchmarks/paper_agv.py --scenes simple_static --seeds 0 --steps 100000 --tag short
    python benchmarks/paper_agv.py --replot            # table + PNG again from the JSON

The scenes are the Hydra env presets ``env=agv_<scene>`` (configs/env/agv_*_*.yaml):

| paper scene     | preset              | layout | goal               | moving obstacles | cap  |
|---|---|---|---|---|---|
| simple static   | agv_simple_static   | small  | fixed              | none             | 2000 |
| simple dynamic  | agv_simple_dynamic  | small  | moves 0.5 m/s, 6 m | 2 AGVs, 3 people | 2000 |
| complex static  | agv_complex_static  | large  | fixed              | none             | 3000 |
| complex dynamic | agv_complex_dynamic | large  | moves 0.5 m/s, 6 m | 4 AGVs, 6 people | 4000 |

What the paper fixes and rndx follows: four scenes, simple/complex x static/dynamic, a
target object that moves in the dynamic scenes, the episode caps (2000, 2000, 3000, 4000
steps), a sparse extrinsic reward, continuous actions and positions, PPO vs RND-PPO. What
the paper's public text (abstract and summaries; no code) leaves open, and rndx's choice:
the warehouse geometry (simple: the 18 m x 12 m two-block ``small`` layout; complex: the
34 m x 22 m six-block ``large`` layout with cross aisles and four goal regions), how the
target moves (ping-pong along ``goal_travel`` = 6 m of the aisle lane nearest to its
sampled spawn point, at ``goal_speed`` = 0.5 m/s, a third of the vehicle's top speed, so it
can be caught), whether other traffic moves in the dynamic scenes (yes: the AGVs and
pedestrians of ``agv_warehouse_dynamic``, doubled on the larger floor), the reward values
(+1 goal, -0.1 and episode end on collision), the training budget and seeds.

Measures, per scene and agent, over seeds: the training success rate at the end of the
budget (fraction of successful episodes among those ended in the last ``--window`` steps),
its best value along the curve, the episodes and env steps to the first curve point at or
above 80% success (mean over the seeds that got there, and how many did), and the successful
and total training episodes summed over seeds (a window holding few episodes gives a noisy
rate: read the curves with that count in mind). Runs reuse
``benchmarks/exploration.py``'s training loop, curves and panels. Writes
``benchmarks/results/<tag>.json`` and ``<tag>.png`` (four panels: mean and min-max spread
over seeds; tag ``paper_agv`` by default: a run with other settings than the defaults, the
job count aside, needs ``--tag`` when those files exist) and prints the markdown table with a
per-scene verdict on the paper's claim.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import as_completed
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...`

from benchmarks._args import (  # noqa: E402
    RESULTS_RULE,
    at_least,
    command,
    nonnegative_int,
    positive_int,
    refuse_overwrite,
    worker_pool,
)
from benchmarks.exploration import RESULTS, plot_panel, run_one  # noqa: E402

SCENES = ("simple_static", "simple_dynamic", "complex_static", "complex_dynamic")
BAR = 0.8  # the success rate whose first crossing counts as "completing the task"


def run_scene(scene: str, agent: str, seed: int, steps: int, window: int, extra: list[str]):
    result = run_one(agent, seed, steps, window, extra, scene=(f"env=agv_{scene}",))
    result["scene"] = scene
    return result


def first_reach(run: dict, bar: float = BAR) -> tuple[int, int] | None:
    """(env steps, episodes ended) at the first curve point with success >= ``bar``."""
    for (t, v), (_, eps) in zip(run["curve"], run["episodes_curve"]):
        if v >= bar:
            return t, eps
    return None


def summary(runs: list[dict]) -> dict:
    import numpy as np

    final = np.array([r["curve"][-1][1] for r in runs])
    best = np.array([max(v for _, v in r["curve"]) for r in runs])
    # mean of the curve: the area under it over the budget, the run's sample efficiency
    mean = np.array([float(np.mean([v for _, v in r["curve"]])) for r in runs])
    firsts = [f for f in (first_reach(r) for r in runs) if f is not None]
    return {
        "final": final,
        "best": best,
        "mean": mean,
        "reached": len(firsts),
        "steps": float(np.mean([f[0] for f in firsts])) if firsts else None,
        "episodes": float(np.mean([f[1] for f in firsts])) if firsts else None,
        "n": len(runs),
        "successes": sum(r["successes"] for r in runs),
    }


def verdict(ppo: dict, rnd: dict) -> str:
    """Does PPO+RND complete the task faster (first 80% in more seeds, or in as many with
    at least 10% fewer steps) and end at least as high with no wider seed spread, than PPO?
    "holds" also needs every PPO+RND seed's mean success over training above every PPO
    seed's; with a handful of seeds whose ranges overlap the point estimates only lean."""
    if ppo["reached"] == 0 and rnd["reached"] == 0:
        return (
            "not shown: neither reaches 80% within the budget (successful training episodes "
            f"over all seeds: PPO {ppo['successes']}, PPO+RND {rnd['successes']})"
        )
    faster = rnd["reached"] > ppo["reached"] or (
        rnd["reached"] == ppo["reached"] and rnd["steps"] < 0.9 * ppo["steps"]
    )
    spread = lambda s: s["final"].max() - s["final"].min()  # noqa: E731
    stable = rnd["final"].mean() >= ppo["final"].mean() and spread(rnd) <= spread(ppo)
    separated = rnd["mean"].min() > ppo["mean"].max()
    facts = (
        f"80% in {rnd['reached']}/{rnd['n']} seeds against {ppo['reached']}/{ppo['n']}"
        + (
            f", at {rnd['steps'] / 1000:.0f}k against {ppo['steps'] / 1000:.0f}k steps"
            if rnd["steps"] is not None and ppo["steps"] is not None
            else ""
        )
        + f"; mean success over training {rnd['mean'].mean():.2f} "
        f"({rnd['mean'].min():.2f}-{rnd['mean'].max():.2f}) against "
        f"{ppo['mean'].mean():.2f} ({ppo['mean'].min():.2f}-{ppo['mean'].max():.2f})"
    )
    if faster and stable and separated:
        return f"holds: PPO+RND reaches 80% sooner, ends as high, spreads no wider ({facts})"
    if faster and stable:
        return (
            f"leans to PPO+RND, not shown: the seeds overlap ({facts}; "
            f"{rnd['n']} and {ppo['n']} seeds)"
        )
    if faster:
        return f"partly: PPO+RND reaches 80% sooner but ends lower or spreads wider ({facts})"
    return f"not shown: PPO+RND does not reach 80% clearly sooner than PPO ({facts})"


def table(results: list[dict]) -> str:
    lines = [
        "| scene | agent | seeds | final success | best success | mean over training | "
        "reached 80% | steps to 80% | episodes to 80% | successes / episodes | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for scene in dict.fromkeys(r["scene"] for r in results):
        per = {}
        for agent in dict.fromkeys(r["agent"] for r in results if r["scene"] == scene):
            runs = [r for r in results if r["scene"] == scene and r["agent"] == agent]
            s = per[agent] = summary(runs)
            f, b, m = s["final"], s["best"], s["mean"]
            speed = sum(r["curve"][-1][0] / r["seconds"] for r in runs) / len(runs)
            lines.append(
                f"| {scene} | {agent} | {s['n']} | {f.mean():.2f} ({f.min():.2f}-{f.max():.2f}) "
                f"| {b.mean():.2f} ({b.min():.2f}-{b.max():.2f}) "
                f"| {m.mean():.2f} ({m.min():.2f}-{m.max():.2f}) | {s['reached']}/{s['n']} | "
                + (f"{s['steps'] / 1000:.0f}k" if s["steps"] is not None else "-")
                + " | "
                + (f"{s['episodes']:.0f}" if s["episodes"] is not None else "-")
                + f" | {sum(r['successes'] for r in runs)} / {sum(r['episodes'] for r in runs)}"
                + f" | {speed:.0f} |"
            )
        if "ppo" in per and "ppo_rnd" in per:
            verdicts.append(f"- {scene}: {verdict(per['ppo'], per['ppo_rnd'])}")
    out = "\n".join(lines)
    if verdicts:
        out += "\n\nThe paper's claim (RND-PPO faster and more stable than PPO), scene by scene:\n"
        out += "\n".join(verdicts)
    return out


def plot(results: list[dict], path: Path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rndx.utils.io import atomic_save

    scenes = list(dict.fromkeys(r["scene"] for r in results))
    rows = 1 if len(scenes) <= 2 else 2
    cols = 1 if len(scenes) == 1 else 2
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    for ax, scene in zip(axes.ravel(), scenes):
        runs = [r for r in results if r["scene"] == scene]
        plot_panel(ax, runs, f"{scene.replace('_', ' ')}")
    for ax in axes.ravel()[len(scenes) :]:
        ax.axis("off")
    fig.suptitle(
        f"RND-AGV paper scenes, sparse reward, {steps // 1000}k steps per run: "
        "training success rate, mean and min-max over seeds"
    )
    fig.tight_layout()
    atomic_save(lambda p: fig.savefig(p, dpi=100, format="png"), path)
    plt.close(fig)


def main() -> None:
    from rndx.utils.io import atomic_write_json

    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=RESULTS_RULE.format(flag="--tag")
    )
    p.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    p.add_argument("--agents", nargs="+", default=["ppo", "ppo_rnd", "ppo_rdd"])
    p.add_argument("--seeds", nargs="+", type=nonnegative_int, default=[0, 1, 2])
    p.add_argument("--steps", type=at_least(2), default=131_072)  # 32 rollouts of 16 x 256
    p.add_argument("--window", type=at_least(2), default=16_384)
    p.add_argument("--jobs", type=positive_int, default=2)
    p.add_argument("--tag", default=None, help="results name (default: paper_agv; see below)")
    p.add_argument("--replot", action="store_true", help="table and PNG from <tag>.json only")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = p.parse_args()
    named = args.tag is not None
    args.tag = args.tag or "paper_agv"
    json_path, png_path = RESULTS / f"{args.tag}.json", RESULTS / f"{args.tag}.png"
    if args.replot:
        import json

        if not json_path.is_file():
            raise SystemExit(f"--replot: {json_path} does not exist; run the benchmark first")
        saved = json.loads(json_path.read_text())
        results, run_args, wall = saved["results"], saved["args"], saved.get("wall_seconds")
        saved_complete = saved.get("complete", True)
    else:
        refuse_overwrite(p, args, [json_path, png_path], named=named, flag="--tag", skip=("jobs",))
        window = min(args.window, args.steps)
        progress = ["progress_bar=false", *args.overrides]
        # seed-major order: if the benchmark is stopped early, every scene has its first seeds
        jobs = [(sc, a, s) for s in args.seeds for sc in args.scenes for a in args.agents]
        run_args = {k: v for k, v in vars(args).items() if k != "replot"}
        RESULTS.mkdir(exist_ok=True)
        start = time.perf_counter()
        results = []
        with worker_pool(args.jobs) as pool:
            futures = [
                pool.submit(run_scene, sc, a, s, args.steps, window, progress) for sc, a, s in jobs
            ]
            for f in as_completed(futures):
                results.append(f.result())
                wall = time.perf_counter() - start
                # saved after every run, so a stopped benchmark still leaves its finished runs
                done = {"complete": len(results) == len(jobs), "wall_seconds": wall}
                atomic_write_json(json_path, {"args": run_args, **done, "results": results})
                print(f"[{wall / 60:.1f} min] {len(results)}/{len(jobs)} runs", file=sys.stderr)
        order = {job: k for k, job in enumerate(jobs)}
        results.sort(key=lambda r: order[(r["scene"], r["agent"], r["seed"])])
        atomic_write_json(json_path, {"args": run_args, **done, "results": results})
        saved_complete = True
    plot(results, png_path, int(run_args["steps"]))
    cmd = command("paper_agv.py", p, argparse.Namespace(**run_args), skip=("replot",))
    print(f"## The RND-AGV paper's four scenes: PPO vs PPO+RND vs PPO+RDD\n\ncommand: `{cmd}`")
    if wall is not None:
        print(f"wall time: {wall / 60:.1f} min with {run_args['jobs']} jobs\n")
    if not saved_complete:
        print("**incomplete: the benchmark was stopped before every run finished**\n")
    print(table(results))
    print(f"\ncurves: {png_path}")


if __name__ == "__main__":
    main()
