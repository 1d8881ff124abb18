"""Success rate against environment steps: ppo vs ppo_rnd vs ppo_rdd on a sparse-reward task.

Every run uses the same Hydra config (``env=agv_warehouse env.kwargs.layout=hard``, sparse
reward, 2000-step episodes as in the RND-AGV paper's simple scenes) and differs only in
``agent`` and ``seed``. The success rate
at a step count is the fraction of successful episodes among the training episodes that
ended in the last window of steps (50k by default), the usual learning-curve measure.

    python benchmarks/exploration.py                       # 3 agents x 3 seeds x 1M steps
    python benchmarks/exploration.py --steps 300000 --seeds 0 --agents ppo ppo_rnd --tag short
    python benchmarks/exploration.py --task push --steps 150000 --window 20000 --tag push_150k

``--task push`` runs the same agents on ``env=mujoco_push`` (sparse: +1 when the block
reaches the goal, 200-step episodes); "floor explored" is then the share of 2 cm cells of the
block's reachable square that the block visited (``info["pose"]`` is the block's pose).

Writes ``benchmarks/results/<tag>.json`` (every curve; tag ``exploration`` or
``exploration_<task>`` by default), ``<tag>.png`` (mean and min-max spread over seeds) and
prints a markdown table at 250k / 500k / 1M steps. A run with other settings than the defaults
(``--jobs`` aside) needs ``--tag`` when the default tag's files exist (``--help``).
Runs go in parallel over ``--jobs`` processes, one torch thread each. Each finished run is
saved at once to ``results/<tag>.partial.json``; rerunning the same command after a crash
or a kill trains only the runs that had not finished (the file goes once all have).
"""

from __future__ import annotations

import argparse
import json
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
    nonnegative_int,
    positive_int,
    refuse_overwrite,
    worker_pool,
)
from rndx.utils.io import atomic_write_json  # noqa: E402  (after the thread limit above)

RESULTS = Path(__file__).resolve().parent / "results"

# task -> Hydra overrides, coverage cell size (m) of info["pose"], title of the table and plot
TASKS = {
    "agv_hard": (
        ["env.kwargs.layout=hard", "env.max_episode_steps=2000"],
        1.0,
        "AGV warehouse, hard layout, sparse reward",
    ),
    "push": (["env=mujoco_push"], 0.02, "MuJoCo push, sparse reward"),
}

COVERAGE_LABEL = {
    "agv_hard": "fraction of the floor's 1 m cells visited",
    "push": "fraction of the block's 2 cm cells visited",
}


def free_cells(task: str, env) -> int:
    """Cells the tracked pose can visit: floor cells of the layout, or for push the 2 cm cells
    of the square the block's centre can reach."""
    if task == "push":
        from rndx.envs.mujoco.push import REACH

        return int(round(2 * REACH / TASKS["push"][1])) ** 2
    return int((~env.unwrapped.core.world.layout.solid).sum())


def run_one(
    agent: str,
    seed: int,
    steps: int,
    window: int,
    overrides: list[str],
    task: str = "agv_hard",
    scene: tuple[str, ...] | None = None,
    eval_episodes: int = 0,
    action_repeat: int = 1,
) -> dict:
    """Train one agent on ``task`` (or on ``scene``, Hydra overrides replacing the task's) +
    ``overrides``; return its curves: ``curve`` [(env steps, success rate in the last
    window)], ``episodes_curve`` [(env steps, training episodes ended so far)] at the same
    steps, and ``coverage``; with ``eval_episodes``, also ``eval`` (rndx.evaluate's record
    of the final policy's deterministic episodes on fresh seeds).

    ``steps``, ``window`` and every step in the curves count control ticks of the simulator;
    with ``action_repeat`` k (AGV only) the agent decides every k ticks, so it takes
    steps / k decisions and its episodes last max_episode_steps / k decisions (the same
    ticks)."""
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict
    from stable_baselines3.common.callbacks import BaseCallback

    from rndx.agents import build_agent
    from rndx.envs import make_sb3_vec_env
    from rndx.evaluate import evaluate_policy_episodes
    from rndx.paths import config_dir

    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"agent={agent}",
                f"seed={seed}",
                *(TASKS[task][0] if scene is None else scene),
                *overrides,
            ],
        )
    if action_repeat > 1:  # the episode keeps its ticks: max_episode_steps / k decisions
        with open_dict(cfg):
            cfg.env.kwargs.action_repeat = action_repeat
            cfg.env.max_episode_steps = -(-int(cfg.env.max_episode_steps) // action_repeat)
    env = make_sb3_vec_env(
        cfg.env.id, int(cfg.n_envs), seed, int(cfg.env.max_episode_steps), dict(cfg.env.kwargs)
    )
    model = build_agent(cfg.agent, env, seed, "cpu", None)

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[tuple[int, bool]] = []
            self.cells: set[tuple[int, int]] = set()  # 1 m cells visited so far
            self.coverage: list[tuple[int, int]] = []

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done:
                    tick = self.num_timesteps * action_repeat
                    self.ends.append((tick, bool(info.get("is_success", False))))
                pose = info.get("pose")
                if pose is not None:
                    self.cells.add((int(pose[0] // cell), int(pose[1] // cell)))
            return True

        def _on_rollout_end(self) -> None:
            self.coverage.append((self.num_timesteps * action_repeat, len(self.cells)))

    cell = TASKS[task][1]
    curve = Curve()
    start = time.perf_counter()
    model.learn(-(-steps // action_repeat), callback=curve)
    seconds = time.perf_counter() - start
    ends = np.array(curve.ends, dtype=np.int64).reshape(-1, 2)
    points, episodes = [], []
    for t in range(window, steps + 1, window // 2):
        sel = (ends[:, 0] > t - window) & (ends[:, 0] <= t)
        points.append((t, float(ends[sel, 1].mean()) if sel.any() else 0.0))
        episodes.append((t, int((ends[:, 0] <= t).sum())))
    evaluation = None
    if eval_episodes:
        evaluation = evaluate_policy_episodes(
            model,
            cfg.env.id,
            eval_episodes,
            seed + 1000,
            int(cfg.env.max_episode_steps),
            dict(cfg.env.kwargs),
            deterministic=True,
        )
    return {
        "task": task,
        "agent": agent,
        "seed": seed,
        "eval": evaluation,
        "curve": points,
        "episodes_curve": episodes,
        "seconds": seconds,
        "coverage": curve.coverage,
        "free_cells": free_cells(task, env),
        "episodes": int(len(ends)),
        "successes": int(ends[:, 1].sum()),
    }


def table_marks(steps: int) -> list[int]:
    """Table columns: 250k, 500k, 1M (those within the budget) and the budget itself."""
    marks = [m for m in (250_000, 500_000, 1_000_000) if m < steps] + [steps]
    return marks if len(marks) > 1 else [steps // 2, steps]


def at(curve: list, step: int) -> float:
    """Success rate of the last curve point at or before ``step``."""
    vals = [v for t, v in curve if t <= step]
    return vals[-1] if vals else float("nan")


def table(results: list[dict], marks: list[int]) -> str:
    import numpy as np

    agents = list(dict.fromkeys(r["agent"] for r in results))
    head = "| agent | seeds | " + " | ".join(f"{m // 1000}k" for m in marks)
    evals = all(r.get("eval") for r in results)
    head += " | first step at 80% (mean) | floor explored | steps/s |"
    head += " final policy, deterministic |" if evals else ""
    lines = [head, "|" + "---|" * (len(marks) + 5 + evals)]
    for a in agents:
        runs = [r for r in results if r["agent"] == a]
        cells = []
        for m in marks:
            v = np.array([at(r["curve"], m) for r in runs])
            cells.append(f"{v.mean():.2f} ({v.min():.2f}-{v.max():.2f})")
        firsts = [next((t for t, v in r["curve"] if v >= 0.8), None) for r in runs]
        reached = [f for f in firsts if f is not None]
        first = (
            f"{np.mean(reached) / 1000:.0f}k ({len(reached)}/{len(runs)} seeds)"
            if reached
            else f"never (0/{len(runs)})"
        )
        speed = np.mean([r["curve"][-1][0] / r["seconds"] for r in runs])
        explored = np.mean([r["coverage"][-1][1] / r["free_cells"] for r in runs])
        line = (
            f"| {a} | {len(runs)} | " + " | ".join(cells) + f" | {first} | "
            f"{explored:.0%} | {speed:.0f} |"
        )
        if evals:
            e = np.array([r["eval"]["success_rate"] for r in runs])
            line += f" {e.mean():.2f} ({e.min():.2f}-{e.max():.2f}) |"
        lines.append(line)
    return "\n".join(lines)


def plot(results: list[dict], path: Path, task: str = "agv_hard") -> None:
    """Success rate and floor coverage against steps, mean and min-max over seeds (rndx.report)."""
    import numpy as np

    from rndx.report import plot_curves

    success: dict[str, list] = {}
    coverage: dict[str, list] = {}
    for r in results:
        t = np.array([p[0] for p in r["curve"]], dtype=float)
        v = np.array([p[1] for p in r["curve"]], dtype=float)
        success.setdefault(r["agent"], []).append((t, v))
        tc = np.array([p[0] for p in r["coverage"]], dtype=float)
        c = np.array([p[1] / r["free_cells"] for p in r["coverage"]], dtype=float)
        coverage.setdefault(r["agent"], []).append((tc, c))
    plot_curves(
        [
            ("success rate (training episodes, last window)", success),
            (COVERAGE_LABEL[task], coverage),
        ],
        path,
        f"{TASKS[task][2]}: mean and min-max over seeds",
        ylims=[(-0.02, 1.02), (-0.02, 1.02)],
    )


def plot_panel(ax, results: list[dict], title: str) -> None:
    """Success-rate curves of every agent in ``results`` on ``ax``: mean and min-max band."""
    import numpy as np

    for a in dict.fromkeys(r["agent"] for r in results):
        runs = [r for r in results if r["agent"] == a]
        t = np.array([p[0] for p in runs[0]["curve"]])
        v = np.array([[p[1] for p in r["curve"]] for r in runs])
        ax.plot(t, v.mean(0), label=f"{a} (n={len(runs)})")
        ax.fill_between(t, v.min(0), v.max(0), alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate (training episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=RESULTS_RULE.format(flag="--tag")
    )
    p.add_argument("--agents", nargs="+", default=["ppo", "ppo_rnd", "ppo_rdd"])
    p.add_argument("--seeds", nargs="+", type=nonnegative_int, default=[0, 1, 2])
    p.add_argument("--steps", type=at_least(2), default=1_000_000)
    p.add_argument(
        "--window", type=at_least(2), default=50_000, help="steps of the success-rate window"
    )
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1)
    p.add_argument("--tag", default=None, help="results name (default: exploration[_<task>])")
    p.add_argument("--task", choices=sorted(TASKS), default="agv_hard")
    p.add_argument(
        "--eval-episodes",
        type=nonnegative_int,
        default=32,
        help="deterministic episodes of each final policy on fresh seeds (0: none)",
    )
    p.add_argument(
        "--action-repeat",
        type=positive_int,
        default=1,
        help="AGV only: each decision held for K control ticks; steps still count ticks",
    )
    p.add_argument("--replot", type=Path, help="redraw PNG and table from a saved JSON")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = p.parse_args()
    if args.replot:
        saved = json.loads(args.replot.read_text())
        plot(
            saved["results"], args.replot.with_suffix(".png"), saved["args"].get("task", "agv_hard")
        )
        steps = saved["args"]["steps"]
        print(table(saved["results"], table_marks(steps)))
        return
    named = args.tag is not None
    if args.tag is None:
        args.tag = "exploration" if args.task == "agv_hard" else f"exploration_{args.task}"
    if args.action_repeat > 1 and args.task != "agv_hard":
        p.error(f"--action-repeat {args.action_repeat}: > 1 only with --task agv_hard")
    outputs = [RESULTS / f"{args.tag}{ext}" for ext in (".json", ".png", ".partial.json")]
    refuse_overwrite(p, args, outputs, named=named, flag="--tag", skip=("task", "jobs"))
    window = min(args.window, args.steps)
    jobs = [(a, s) for s in args.seeds for a in args.agents]
    # Every finished run is saved at once to <tag>.partial.json; a rerun of the same command
    # (same steps, window, task, overrides) takes finished runs from there instead of
    # training them again, so a crash or a kill loses only the runs in flight.
    RESULTS.mkdir(exist_ok=True)
    partial_path = RESULTS / f"{args.tag}.partial.json"
    same = {
        "steps": args.steps,
        "window": window,
        "task": args.task,
        "overrides": args.overrides,
        "eval_episodes": args.eval_episodes,
        "action_repeat": args.action_repeat,
    }
    done: dict[str, dict] = {}
    if partial_path.is_file():
        saved = json.loads(partial_path.read_text())
        if saved.get("same") == same:
            done = saved["runs"]
            print(f"resuming: {len(done)} finished run(s) from {partial_path}")
    start = time.perf_counter()
    with worker_pool(args.jobs) as pool:
        futures = {
            pool.submit(
                run_one,
                a,
                s,
                args.steps,
                window,
                args.overrides,
                args.task,
                eval_episodes=args.eval_episodes,
                action_repeat=args.action_repeat,
            ): f"{a}/{s}"
            for a, s in jobs
            if f"{a}/{s}" not in done
        }
        error: BaseException | None = None
        for fut in as_completed(futures):  # saved as each finishes, not in submission order
            if fut.cancelled():
                continue
            if fut.exception() is not None:  # the runs already running still finish, saved
                error = error or fut.exception()
                for other in futures:
                    other.cancel()  # those not started yet
                continue
            done[futures[fut]] = fut.result()
            atomic_write_json(partial_path, {"same": same, "runs": done})
    if error is not None:
        raise error
    results = [done[f"{a}/{s}"] for a, s in jobs]
    wall = time.perf_counter() - start
    atomic_write_json(RESULTS / f"{args.tag}.json", {"args": vars(args), "results": results})
    partial_path.unlink(missing_ok=True)  # complete: the next run of this command starts afresh
    plot(results, RESULTS / f"{args.tag}.png", args.task)
    marks = table_marks(args.steps)
    cmd = "python benchmarks/exploration.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if k != "overrides" and v not in (None, [])
    )
    cmd = " ".join([cmd, *args.overrides])
    print(
        f"## Exploration: {TASKS[args.task][2]}\n\n"
        f"command: `{cmd}` ({wall / 60:.1f} min wall, {args.jobs} jobs)\n"
    )
    print(table(results, marks))
    print(f"\ncurves: {RESULTS / (args.tag + '.png')}")


if __name__ == "__main__":
    main()
