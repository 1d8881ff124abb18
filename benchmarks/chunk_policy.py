"""The flow-matching chunk policy against the scripted expert it imitates, and its sampling speed.

Records expert demonstrations on the AGV warehouse (small layout; by default with Gaussian
noise of std 0.3 on the *executed* actions while the clean expert actions are recorded, so the
demos show recoveries from drift, as DART does), trains ``agent=chunk_flow`` by behaviour
cloning with its Hydra config, then runs the clean expert and the policy on the same seeded
evaluation episodes (seeds differ from the demos'). Sampling latency: one call of
``sample_chunks(obs, 64)`` (H = 16, all 64 chunks in one batched call), one torch thread,
median over ``--calls`` calls after a warm-up.

    python benchmarks/chunk_policy.py [--demos 200] [--noise 0.3] [--steps N] [--episodes 100]
    python benchmarks/chunk_policy.py --env mujoco_push   # the MuJoCo push task, plus its shifts

With ``--env mujoco_push`` the policy is also evaluated under each named shift of
``rndx.envs.mujoco.SHIFTS`` (heavy block, high friction, goal offset, obstacle), next to the
expert under the same shift: the conditions the runtime monitor is tested on.

Bars (issue 4): success rate >= 0.8 x the expert's; sampling B=64, H=16 <= 5 ms per call.
Writes ``benchmarks/results/<out>.json`` (default ``chunk_policy`` or ``chunk_policy_<env>``;
a run with other settings than the defaults needs ``--out`` when that file exists).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...`

from benchmarks._args import (  # noqa: E402
    RESULTS_RULE,
    command,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    refuse_overwrite,
)

RESULTS = Path(__file__).resolve().parent / "results"
TITLES = {"agv_warehouse": "agv_warehouse, small layout", "mujoco_push": "mujoco_push"}


def main() -> None:
    import numpy as np
    import torch
    from hydra import compose, initialize_config_dir

    from rndx.agents.chunk_flow import behaviour_clone, from_demos
    from rndx.config import to_dict
    from rndx.demos import record
    from rndx.envs import make_sb3_vec_env
    from rndx.evaluate import evaluate_policy_episodes
    from rndx.paths import config_dir

    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=RESULTS_RULE.format(flag="--out")
    )
    p.add_argument("--demos", type=positive_int, default=200, help="expert episodes to train on")
    p.add_argument(
        "--noise",
        type=nonnegative_float,
        default=0.3,
        help="std of noise on the expert's executed actions while recording",
    )
    p.add_argument(
        "--steps", type=positive_int, default=None, help="BC steps (default: the config's)"
    )
    p.add_argument("--episodes", type=positive_int, default=100, help="evaluation episodes")
    p.add_argument("--eval-seed", type=nonnegative_int, default=1000)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--calls", type=positive_int, default=200, help="timed sample_chunks calls")
    p.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides")
    p.add_argument("--env", choices=sorted(TITLES), default="agv_warehouse")
    p.add_argument(
        "--out", default=None, help="results name (default: chunk_policy[_<env>]; see below)"
    )
    args = p.parse_args()
    cmd = command("chunk_policy.py", p, args)
    named = args.out is not None
    if args.out is None:
        args.out = "chunk_policy" if args.env == "agv_warehouse" else f"chunk_policy_{args.env}"
    out_path = RESULTS / f"{args.out}.json"
    refuse_overwrite(p, args, [out_path], named=named, flag="--out", skip=("env",))
    torch.set_num_threads(1)

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["agent=chunk_flow", f"env={args.env}", *args.overrides])
    env_id = str(cfg.env.id)
    kwargs = to_dict(cfg.env.kwargs)
    max_steps = int(cfg.env.max_episode_steps)
    bc = to_dict(cfg.agent.bc)
    bc.pop("successful_only")
    if args.steps is not None:
        bc["steps"] = args.steps

    t0 = time.perf_counter()
    demos = record(env_id, args.demos, args.seed, max_steps, kwargs, noise=args.noise)
    t_record = time.perf_counter() - t0
    train_demos = demos.successful()
    env = make_sb3_vec_env(env_id, 1, 0, max_steps, kwargs)
    policy = from_demos(
        train_demos, env.observation_space, env.action_space, args.seed, **to_dict(cfg.agent.policy)
    )
    env.close()
    t0 = time.perf_counter()
    losses = behaviour_clone(policy, train_demos, seed=args.seed, **bc)
    t_train = time.perf_counter() - t0

    expert = record(env_id, args.episodes, args.eval_seed, max_steps, kwargs)
    rows = {
        "expert": {"success_rate": expert.success_rate, "mean_length": float(expert.lengths.mean())}
    }
    for name, det in (("chunk_flow (zero noise)", True), ("chunk_flow (sampled)", False)):
        r = evaluate_policy_episodes(
            policy, env_id, args.episodes, args.eval_seed, max_steps, kwargs, deterministic=det
        )
        rows[name] = {"success_rate": r["success_rate"], "mean_length": r["mean_length"]}
    if args.env == "mujoco_push":
        from rndx.envs.mujoco import SHIFTS

        for shift, kw in SHIFTS.items():
            if not kw:
                continue
            skw = {**kwargs, **kw}
            e = record(env_id, args.episodes, args.eval_seed, max_steps, skw)
            rows[f"expert, shift {shift}"] = {
                "success_rate": e.success_rate,
                "mean_length": float(e.lengths.mean()),
            }
            r = evaluate_policy_episodes(
                policy, env_id, args.episodes, args.eval_seed, max_steps, skw, deterministic=True
            )
            rows[f"chunk_flow (zero noise), shift {shift}"] = {
                "success_rate": r["success_rate"],
                "mean_length": r["mean_length"],
            }

    obs = train_demos.obs[0]
    for _ in range(20):
        policy.sample_chunks(obs, 64)
    times = []
    for _ in range(args.calls):
        t = time.perf_counter()
        chunks = policy.sample_chunks(obs, 64)
        times.append(time.perf_counter() - t)
    assert chunks.shape == (64, policy.horizon, 2)
    latency_ms = 1e3 * float(np.median(times))

    pc = cfg.agent.policy
    print(f"## Chunk policy vs the scripted expert ({TITLES[args.env]})\n")
    print(
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        "1 torch thread"
    )
    print(
        f"- demos: {args.demos} expert episodes (seeds from {args.seed}), "
        f"executed-action noise {args.noise}, {train_demos.n_episodes} successful, "
        f"{len(train_demos.obs)} steps, recorded in "
        f"{t_record:.1f} s"
    )
    print(
        f"- policy: H {pc.horizon}, execute k {pc.execute}, embedding {pc.embedding_dim}, "
        f"encoder {list(pc.encoder_hidden)}, velocity {list(pc.velocity_hidden)}, "
        f"{pc.flow_steps} Euler steps"
    )
    print(
        f"- training: {bc['steps']} steps of batch {bc['batch_size']}, lr "
        f"{bc['learning_rate']} cosine, {t_train:.0f} s; bc_loss {losses[0]:.3f} -> "
        f"{losses[-1]:.3f}"
    )
    print(
        f"- evaluation: the same {args.episodes} episodes (seeds from {args.eval_seed}) "
        "for every row"
    )
    print(f"- command: `{cmd}`\n")
    base = rows["expert"]["success_rate"]

    def x_expert(rate: float) -> float:  # an expert with no success (a tiny run) gives n/a
        return rate / base if base else float("nan")

    print("| policy | success rate | x expert | mean length |")
    print("|---|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['success_rate']:.2f} | {x_expert(r['success_rate']):.2f} | "
            f"{r['mean_length']:.0f} |"
        )
    ratio = x_expert(rows["chunk_flow (zero noise)"]["success_rate"])
    print(
        f"\n| sampling | median ms per call | min-max |\n|---|---:|---:|\n"
        f"| sample_chunks(obs, 64), H {pc.horizon}, {pc.flow_steps} steps | {latency_ms:.2f} | "
        f"{1e3 * min(times):.2f}-{1e3 * max(times):.2f} |\n"
    )
    print(
        f"- bar: success >= 0.8 x expert (deterministic predict): "
        f"{'PASS' if ratio >= 0.8 else 'FAIL'} ({ratio:.2f})"
    )
    print(
        f"- bar: sampling B=64, H=16 <= 5 ms: {'PASS' if latency_ms <= 5.0 else 'FAIL'} "
        f"({latency_ms:.2f} ms)"
    )
    RESULTS.mkdir(exist_ok=True)
    out_path.write_text(
        json.dumps(
            {
                "rows": rows,
                "ratio": ratio,
                "latency_ms": latency_ms,
                "train_s": t_train,
                "bc_steps": bc["steps"],
                "losses": losses,
                "demos": args.demos,
                "episodes": args.episodes,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
