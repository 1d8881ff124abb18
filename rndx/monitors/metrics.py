"""Failure-prediction metrics (FIPER, methods.md section 4).

Each evaluated rollout has a label from the env (failed: collision or time-out; success) and
the monitor's first alarm step (None: no alarm). With N_fail failures and N_succ successes:

    TPR = detected failures / N_fail            TNR = successes without alarm / N_succ
    accuracy = (TPR + TNR) / 2
    DT  = mean over detected failures of alarm_step / max_episode_steps
    TWA = 1/2 [ sum over detected failures (1 - alarm_step / max_episode_steps) / N_fail
                + successes without alarm / N_succ ]

A rate whose denominator is 0 is NaN (no failures: TPR, DT and TWA are undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def failure_metrics(
    failed: Sequence[bool], alarm_steps: Sequence[int | None], max_episode_steps: int
) -> dict[str, float]:
    """TPR, TNR, accuracy, DT, TWA and the counts for one set of rollouts."""
    if max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    f = np.asarray(failed, dtype=bool)
    if len(f) != len(alarm_steps):
        raise ValueError(f"{len(f)} labels but {len(alarm_steps)} alarm steps")
    alarmed = np.array([a is not None for a in alarm_steps], dtype=bool)
    dt = np.array([np.nan if a is None else a / max_episode_steps for a in alarm_steps])
    n_fail, n_succ = int(f.sum()), int((~f).sum())
    detected = f & alarmed
    tpr = detected.sum() / n_fail if n_fail else np.nan
    tnr = (~f & ~alarmed).sum() / n_succ if n_succ else np.nan
    det_time = float(np.mean(dt[detected])) if detected.any() else np.nan
    twa = (
        0.5 * (np.sum(1.0 - dt[detected]) / n_fail + (~f & ~alarmed).sum() / n_succ)
        if n_fail and n_succ
        else np.nan
    )
    return {
        "tpr": float(tpr),
        "tnr": float(tnr),
        "accuracy": float(0.5 * (tpr + tnr)),
        "dt": det_time,
        "twa": float(twa),
        "n_fail": n_fail,
        "n_succ": n_succ,
    }


def false_alarm_rate(failed: Sequence[bool], alarm_steps: Sequence[int | None]) -> float:
    """Share of the SUCCESSFUL rollouts with an alarm (what delta bounds); NaN without any."""
    f = np.asarray(failed, dtype=bool)
    if len(f) != len(alarm_steps):
        raise ValueError(f"{len(f)} labels but {len(alarm_steps)} alarm steps")
    alarmed = np.array([a is not None for a in alarm_steps], dtype=bool)
    return float(alarmed[~f].mean()) if (~f).any() else np.nan
