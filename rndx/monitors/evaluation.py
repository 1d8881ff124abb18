"""Calibrate a monitor from a policy's own rollouts, and evaluate it over named shifts.

Used by ``python -m rndx.monitor`` and ``benchmarks/monitor.py``. Rollouts run first and are
scored afterwards in batches (the monitor only watches, so this equals online monitoring);
every rollout is labelled by the env's outcome, never by the monitor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rndx.monitors.metrics import failure_metrics, false_alarm_rate
from rndx.monitors.monitor import Monitor, MonitorConfig, calibrate, reuse_score_fn, score_traces
from rndx.monitors.policies import as_monitorable
from rndx.monitors.rollouts import run_rollouts

# Table rows: method name -> alarm rule
METHODS = {"FIPER (and)": "and", "RND-OE": "rnd_oe", "ACE": "ace", "OR": "or"}


def calibrate_from_rollouts(
    policy: Any,
    env_id: str,
    episodes: int,
    seed: int,
    max_episode_steps: int | None,
    env_kwargs: dict[str, Any] | None,
    config: MonitorConfig,
    deterministic: bool = False,
) -> tuple[Monitor, dict[str, Any]]:
    """Roll out ``episodes`` nominal episodes, keep the successful ones, calibrate on them.

    :raises ValueError: if ``episodes`` is below the successes the monitor needs (before any
        rollout), if fewer succeed (both say how many episodes to ask for), or if
        ``rnd='reuse'`` and the policy has no exploration RND."""
    need = config.min_rollouts()
    if episodes < need:
        raise ValueError(
            f"episodes={episodes} can never give the {need} successful calibration rollouts "
            f"the monitor needs for delta={config.delta}: raise episodes= to at least {need} "
            "(more if some rollouts fail)"
        )
    adapter = as_monitorable(policy)  # an unsupported policy fails before rolling out
    if config.rnd == "reuse":
        reuse_score_fn(adapter)
    rolls = run_rollouts(
        policy, env_id, episodes, seed, max_episode_steps, env_kwargs, deterministic=deterministic
    )
    ok = [r.obs for r in rolls if r.success]
    if len(ok) < need:
        rate = len(ok) / episodes
        hint = (
            f"raise episodes= to about {math.ceil(1.2 * need / rate)} (success rate "
            f"{rate:.2f} so far)"
            if ok
            else "none succeeded: check that the policy solves its env (python -m "
            "rndx.evaluate run=<dir>) before raising episodes="
        )
        raise ValueError(
            f"only {len(ok)} of {episodes} calibration rollouts succeeded; the monitor needs "
            f"{need} successful ones for delta={config.delta}: {hint}"
        )
    mon = calibrate(policy, ok, config)
    mon.info.update({"env_id": env_id, "calibration_episodes": episodes, "calibration_seed": seed})
    return mon, {"episodes": episodes, "successes": len(ok)}


def evaluate_shift(
    monitor: Monitor,
    policy: Any,
    env_id: str,
    shift: str,
    episodes: int,
    seed: int,
    max_episode_steps: int,
    env_kwargs: dict[str, Any] | None,
    deterministic: bool = False,
) -> dict[str, Any]:
    """Roll out under ``shift``, score, and compute the metrics of every method in
    :data:`METHODS` on the same rollouts."""
    adapter = as_monitorable(policy)
    rolls = run_rollouts(
        policy,
        env_id,
        episodes,
        seed,
        max_episode_steps,
        env_kwargs,
        shift=shift,
        deterministic=deterministic,
    )
    scored = score_traces(monitor, adapter, [r.obs for r in rolls])
    failed = [not r.success for r in rolls]
    out: dict[str, Any] = {
        "shift": shift,
        "episodes": len(rolls),
        "success_rate": float(np.mean([r.success for r in rolls])),
        "methods": {},
    }
    for name, rule in METHODS.items():
        steps = [monitor.alarm_step(r, a, rule) for r, a in scored]
        out["methods"][name] = failure_metrics(failed, steps, max_episode_steps)
        out["methods"][name]["false_alarm_rate"] = false_alarm_rate(failed, steps)
    return out


def format_table(results: list[dict[str, Any]]) -> str:
    """One markdown table: a row per (shift, method), then the mean over the shifts."""
    lines = [
        "| shift | success | method | TPR | TNR | accuracy | DT | TWA |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]

    def f(x: float) -> str:
        return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"

    for res in results:
        for name, m in res["methods"].items():
            lines.append(
                f"| {res['shift']} | {res['success_rate']:.2f} | {name} | {f(m['tpr'])} | "
                f"{f(m['tnr'])} | {f(m['accuracy'])} | {f(m['dt'])} | {f(m['twa'])} |"
            )

    def mean(values: list) -> float:  # n/a where no shift has the figure (no failures)
        finite = [v for v in values if v is not None and np.isfinite(v)]
        return float(np.mean(finite)) if finite else np.nan

    for name in METHODS:
        vals = {
            k: mean([r["methods"][name][k] for r in results])
            for k in ("tpr", "tnr", "accuracy", "dt", "twa")
        }
        lines.append(
            f"| **mean** | | {name} | {f(vals['tpr'])} | {f(vals['tnr'])} | "
            f"{f(vals['accuracy'])} | {f(vals['dt'])} | {f(vals['twa'])} |"
        )
    return "\n".join(lines)
