"""Training throughput of ppo, ppo_rnd and ppo_rdd, measured side by side in one run.

Each agent is built from its Hydra config on the same env (by default AGV warehouse, hard
layout, 1000-step episodes, 16 envs; Hydra overrides change any of it, and the report prints
the settings the composed config ran with; one torch thread) and warmed up for one rollout.
The timed chunks (a few whole rollouts + updates each) are then taken round-robin over the
agents, so load from elsewhere on the machine hits every agent alike; the median chunk gives
steps/s.

    python benchmarks/train_speed.py [--rollouts 2] [--repeats 5] [hydra overrides ...]
    python benchmarks/train_speed.py env.intrinsic_input=pose_tiles   # the tile-coded pose

Bar (issue 3): the intrinsic agents keep at least 75% of plain PPO's throughput.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...`

from benchmarks._args import (  # noqa: E402
    REPORT_RULE,
    command,
    positive_int,
    printed_report,
    report_path,
)

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    import torch

    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=REPORT_RULE.format(default="train_speed")
    )
    p.add_argument("--agents", nargs="+", default=["ppo", "ppo_rnd", "ppo_rdd"])
    p.add_argument("--rollouts", type=positive_int, default=2, help="rollouts per timed chunk")
    p.add_argument("--repeats", type=positive_int, default=5)
    p.add_argument("--out", default=None, help="report name (default train_speed)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every agent")
    args = p.parse_args()
    path = report_path(p, args, RESULTS, "train_speed")
    torch.set_num_threads(1)
    with printed_report(path):
        _run(args, p)


def _run(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir

    from rndx.agents import build_agent
    from rndx.envs import make_sb3_vec_env
    from rndx.paths import config_dir

    models = {}
    settings = {}  # agent -> the settings its composed config ran with
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for agent in args.agents:
            cfg = compose(
                "train",
                overrides=[
                    f"agent={agent}",
                    "env.kwargs.layout=hard",
                    "env.max_episode_steps=1000",
                    *args.overrides,
                ],
            )
            max_steps = int(cfg.env.max_episode_steps)  # 1000 unless an override says otherwise
            env = make_sb3_vec_env(cfg.env.id, int(cfg.n_envs), 0, max_steps, dict(cfg.env.kwargs))
            ppo, layout = cfg.agent.ppo, cfg.env.kwargs.get("layout")
            settings[agent] = (
                f"{cfg.env.id}{f', {layout} layout' if layout else ''}, episodes capped at "
                f"{max_steps} steps, {cfg.n_envs} envs, n_steps {ppo.n_steps}, batch "
                f"{ppo.batch_size}, {ppo.n_epochs} epochs"
            )
            model = build_agent(cfg.agent, env, 0, "cpu", None)
            model.learn(model.n_steps * env.num_envs)  # warm-up: numba, torch, init rollout
            models[agent] = model
    times: dict[str, list[float]] = {a: [] for a in models}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for agent, model in models.items():
            steps = model.n_steps * model.env.num_envs * args.rollouts
            t = time.perf_counter()
            model.learn(steps, reset_num_timesteps=False)
            times[agent].append(steps / (time.perf_counter() - t))

    load_after = os.getloadavg()[0]
    base = float(np.median(times[args.agents[0]]))
    print("## Training throughput (one core)\n")
    print(
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, 1 torch thread"
    )
    if len(set(settings.values())) == 1:
        print(f"- settings (every agent): {next(iter(settings.values()))}")
    else:
        for agent, text in settings.items():
            print(f"- settings of {agent}: {text}")
    # other processes on the machine slow the chunks they overlap: say how busy it was
    print(
        f"- load: 1-min load average {load_before:.1f} before, {load_after:.1f} after the "
        f"timed chunks ({os.cpu_count()} cores)"
    )
    print(
        f"- method: {args.repeats} chunks of {args.rollouts} rollouts + updates per agent, "
        "round-robin, median"
    )
    cmd = command("train_speed.py", p, args, always=("rollouts", "repeats"))
    print(f"- command: `{cmd}`\n")
    print(f"| agent | env steps/s (median) | min-max | x {args.agents[0]} |")
    print("|---|---:|---:|---:|")
    for agent, ts in times.items():
        med = float(np.median(ts))
        print(f"| {agent} | {med:,.0f} | {min(ts):,.0f}-{max(ts):,.0f} | {med / base:.2f} |")
    for agent in args.agents[1:]:
        ratio = float(np.median(times[agent])) / base
        verdict = "PASS" if ratio >= 0.75 else "FAIL"
        print(
            f"\n- bar: {agent} keeps >= 75% of {args.agents[0]}'s throughput: {verdict} "
            f"({ratio:.0%})",
            end="",
        )
    print()


if __name__ == "__main__":
    main()
