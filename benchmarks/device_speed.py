"""Training throughput on CPU against GPU (device=auto) for a large batched env.

Builds ppo_rnd from ``experiment=gpu`` (256 AGV envs, n_steps 128, batch 8192) once per
device: cpu, and cuda when torch sees a GPU. Each model is warmed up for one rollout + update
(numba JIT, CUDA context); then timed chunks of whole rollouts + updates are taken round-robin
over the devices and the median chunk gives env steps/s. Without a GPU only the CPU row is
printed, with a line saying the GPU was not measured.

    python benchmarks/device_speed.py [--agent ppo_rnd] [--n-envs 256] [--rollouts 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...`

from benchmarks._args import PRINTS_ONLY, command, positive_int  # noqa: E402


def main() -> None:
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir

    from rndx.agents import build_agent
    from rndx.envs import make_sb3_vec_env
    from rndx.paths import config_dir
    from rndx.train import resolve_device

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=PRINTS_ONLY)
    p.add_argument("--agent", default="ppo_rnd")
    p.add_argument("--n-envs", type=positive_int, default=256)
    p.add_argument("--rollouts", type=positive_int, default=1, help="rollouts per timed chunk")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--threads", type=positive_int, default=os.cpu_count(), help="torch CPU threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if resolve_device("auto") == "cuda" else [])
    models = {}
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train", overrides=["experiment=gpu", f"agent={args.agent}", f"n_envs={args.n_envs}"]
        )
    for device in devices:
        env = make_sb3_vec_env(
            str(cfg.env.id), int(cfg.n_envs), 0, cfg.env.max_episode_steps, dict(cfg.env.kwargs)
        )
        model = build_agent(cfg.agent, env, 0, device, None)
        model.learn(model.n_steps * env.num_envs)  # warm-up
        models[device] = model
    times: dict[str, list[float]] = {d: [] for d in models}
    for _ in range(args.repeats):
        for device, model in models.items():
            steps = model.n_steps * model.env.num_envs * args.rollouts
            t = time.perf_counter()
            model.learn(steps, reset_num_timesteps=False)
            if device == "cuda":
                torch.cuda.synchronize()
            times[device].append(steps / (time.perf_counter() - t))

    gpu_name = torch.cuda.get_device_name(0) if "cuda" in models else "none visible"
    print("## Training throughput: CPU against GPU (experiment=gpu)\n")
    print(
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, GPU: {gpu_name}; torch "
        f"{torch.__version__}, {args.threads} CPU threads; {args.agent}, AGV "
        f"{cfg.env.kwargs.layout} layout, {cfg.n_envs} envs, n_steps {cfg.agent.ppo.n_steps}, "
        f"batch {cfg.agent.ppo.batch_size}, {cfg.agent.ppo.n_epochs} epochs"
    )
    print(
        f"- method: warm-up rollout, then {args.repeats} chunks of {args.rollouts} rollouts + "
        "updates per device, round-robin, median"
    )
    cmd = command("device_speed.py", p, args, always=("agent", "n_envs", "rollouts", "repeats"))
    print(f"- command: `{cmd}`\n")
    base = float(np.median(times["cpu"]))
    print("| device | env steps/s (median) | min-max | x cpu |")
    print("|---|---:|---:|---:|")
    for device, ts in times.items():
        med = float(np.median(ts))
        print(f"| {device} | {med:,.0f} | {min(ts):,.0f}-{max(ts):,.0f} | {med / base:.2f} |")
    if "cuda" not in models:
        print("\n- GPU: not measured (torch sees no CUDA device on this machine)")


if __name__ == "__main__":
    main()
