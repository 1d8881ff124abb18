"""Thresholds for windowed scores from successful calibration rollouts only.

A calibration set is a list of n score traces (one 1-D array of windowed scores per successful
rollout, of varying length). The target is a false-alarm rate of at most ``delta`` per
rollout on a fresh successful rollout exchangeable with the calibration ones.

``cp_constant``
    Split conformal on each rollout's maximum: the threshold is the k-th smallest maximum with
    k = ceil((n + 1)(1 - delta)). A fresh rollout's maximum exceeds it with probability at most
    delta (finite-sample guarantee). FIPER's code takes ``np.quantile(maxima, 1 - delta)``
    instead, which interpolates below that order statistic and gives the guarantee up.
``cp_band``
    Functional conformal band (split calibration, as FAIL-Detect): the first half gives the
    per-step mean mu_t and spread s_t; on the second half h is the k-th smallest of
    max_t (score_t - mu_t) / s_t; the threshold is mu_t + h s_t (an UPPER band: score minus
    mean, the sign a copy of FIPER's code gets wrong). The guarantee holds with n = the second
    half's size.
``time_varying``
    The per-step (1 - delta) quantile of the scores of the rollouts still running at step t.
    No guarantee: the per-step rates add up over an episode (FIPER's best-performing variant;
    reported, not promised).

``cp_joint`` (rndx's addition, for the AND rule)
    Per-score conformal thresholds each hold delta, so AND (both above) alarms far less often
    than delta on successes and misses failures it could afford to flag. ``cp_joint``
    calibrates the AND alarm itself: the first half of the rollouts gives each score's scale
    (the median of the rollouts' maxima), the second half lambda = the conformal order
    statistic of max_t min(rnd_t / scale_rnd, ace_t / scale_ace); the thresholds are
    lambda x scale. The AND alarm then keeps the finite-sample guarantee at delta (a single
    score against its joint threshold has none).

Steps past the longest calibration rollout keep the last threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KINDS = ("cp_constant", "cp_band", "time_varying")
_SPREAD_FLOOR = 1e-6


def min_calibration(delta: float) -> int:
    """Fewest calibration rollouts n with ceil((n + 1)(1 - delta)) <= n, i.e. a finite
    conformal threshold at level ``delta``."""
    check_delta(delta)
    n = 1
    while math.ceil((n + 1) * (1.0 - delta) - 1e-12) > n:
        n += 1
    return n


def rollouts_needed(delta: float, kind: str = "cp_constant") -> int:
    """Fewest rollouts the thresholds of ``kind`` (one of :data:`KINDS` or ``cp_joint``) are
    calibrated on at ``delta``, exactly (one fewer is an error): ``cp_constant`` needs
    :func:`min_calibration` rollouts; ``cp_band`` and ``cp_joint`` fit on the first half
    (n // 2 rollouts: >= 2 for the band's spread, >= 1 for cp_joint's scales) and need
    :func:`min_calibration` in the second half; ``time_varying`` needs 1 (it promises nothing)."""
    c = min_calibration(delta)
    if kind == "cp_band":
        return max(4, 2 * c - 1)
    if kind == "cp_joint":
        return max(2, 2 * c - 1)
    if kind not in KINDS:
        raise ValueError(f"threshold kind {kind!r}; allowed: {[*KINDS, 'cp_joint']}")
    return c if kind == "cp_constant" else 1


def _check_count(traces: Sequence[np.ndarray], delta: float, kind: str) -> None:
    need = rollouts_needed(delta, kind)
    if len(traces) < need:
        fit = "2 fit the band" if kind == "cp_band" else "1 fits the scales"
        raise ValueError(
            f"{kind} at delta={delta} needs at least {need} calibration rollouts, got "
            f"{len(traces)} (n // 2 >= {fit}, the other >= {min_calibration(delta)} set the "
            "conformal level)"
        )


def check_delta(delta: float) -> None:
    if not 0.0 < float(delta) < 1.0:
        raise ValueError(f"delta={delta!r} must be in (0, 1)")


def conformal_rank(n: int, delta: float) -> int:
    """k = ceil((n + 1)(1 - delta)), the 1-based rank of the conformal order statistic.

    :raises ValueError: if k > n: too few calibration rollouts for this delta (the message
        says how many are needed)."""
    check_delta(delta)
    k = math.ceil((n + 1) * (1.0 - delta) - 1e-12)  # tolerance: (n+1)(1-delta) exact integers
    if k > n:
        raise ValueError(
            f"{n} calibration rollouts are too few for delta={delta}: the conformal threshold "
            f"needs at least {min_calibration(delta)} (ceil((n+1)(1-delta)) <= n)"
        )
    return k


def order_statistic(values: Sequence[float], delta: float) -> float:
    """The ceil((n + 1)(1 - delta))-th smallest of ``values``."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    return float(v[conformal_rank(len(v), delta) - 1])


def _padded(traces: Sequence[np.ndarray]) -> np.ndarray:
    """(n, T_max) with NaN after each trace's end."""
    t_max = max(len(t) for t in traces)
    out = np.full((len(traces), t_max), np.nan)
    for i, t in enumerate(traces):
        out[i, : len(t)] = t
    return out


def _check(traces: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = [np.asarray(t, dtype=np.float64).reshape(-1) for t in traces]
    if not out or any(len(t) == 0 for t in out):
        raise ValueError("calibration needs at least one rollout, and no empty rollout")
    if any(not np.isfinite(t).all() for t in out):
        raise ValueError("calibration scores contain NaN or inf (a successful rollout scored OOD)")
    return out


def cp_constant(traces: Sequence[np.ndarray], delta: float) -> np.ndarray:
    """Constant threshold (as a length-1 array) from the rollouts' maxima."""
    tr = _check(traces)
    return np.array([order_statistic([t.max() for t in tr], delta)])


def cp_band(traces: Sequence[np.ndarray], delta: float) -> np.ndarray:
    """Per-step band mu_t + h s_t; the first half of ``traces`` fits mu, s, the second h."""
    tr = _check(traces)
    _check_count(tr, delta, "cp_band")
    n1 = len(tr) // 2
    fit, cal = tr[:n1], tr[n1:]
    p = _padded(fit)
    t_max = max(len(t) for t in tr)
    count = np.sum(~np.isnan(p), axis=0)
    mu = np.nanmean(p, axis=0)
    sd = np.sqrt(np.nansum((p - mu) ** 2, axis=0) / np.maximum(count, 1))
    # steps reached by < 2 fitting rollouts hold the last well-estimated value
    last = max(int(np.flatnonzero(count >= 2).max(initial=0)), 0)
    mu = np.r_[mu[: last + 1], np.full(t_max - last - 1, mu[last])][:t_max]
    sd = np.r_[sd[: last + 1], np.full(t_max - last - 1, sd[last])][:t_max]
    sd = np.maximum(sd, _SPREAD_FLOOR * max(1.0, float(np.abs(mu).max())))
    h = order_statistic([np.max((t - mu[: len(t)]) / sd[: len(t)]) for t in cal], delta)
    return mu + h * sd


def time_varying(traces: Sequence[np.ndarray], delta: float) -> np.ndarray:
    """Per-step (1 - delta) quantile over the rollouts still running (no guarantee)."""
    tr = _check(traces)
    check_delta(delta)
    p = _padded(tr)
    q = np.nanquantile(p, 1.0 - delta, axis=0)
    return q


def cp_joint(
    rnd_traces: Sequence[np.ndarray], ace_traces: Sequence[np.ndarray], delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Constant (rnd, ace) thresholds whose AND alarm has false-alarm rate <= delta."""
    rt, at = _check(rnd_traces), _check(ace_traces)
    if [len(t) for t in rt] != [len(t) for t in at]:
        raise ValueError("rnd and ace calibration traces must pair up rollout by rollout")
    _check_count(rt, delta, "cp_joint")
    n1 = len(rt) // 2
    floor = 1e-12
    s_r = max(float(np.median([t.max() for t in rt[:n1]])), floor)
    s_a = max(float(np.median([t.max() for t in at[:n1]])), floor)
    joint = [np.max(np.minimum(r / s_r, a / s_a)) for r, a in zip(rt[n1:], at[n1:], strict=True)]
    lam = order_statistic(joint, delta)
    return np.array([lam * s_r]), np.array([lam * s_a])


def thresholds(traces: Sequence[np.ndarray], delta: float, kind: str = "cp_constant"):
    """Dispatch on ``kind`` (one of :data:`KINDS`); returns a 1-D array (length 1 = constant)."""
    if kind not in KINDS:
        raise ValueError(f"threshold kind {kind!r}; allowed: {list(KINDS)}")
    return {"cp_constant": cp_constant, "cp_band": cp_band, "time_varying": time_varying}[kind](
        traces, delta
    )


def at_steps(threshold: np.ndarray, steps: np.ndarray | int) -> np.ndarray:
    """Threshold value at step(s) ``steps``; past its end the last value holds."""
    th = np.asarray(threshold, dtype=np.float64)
    return th[np.minimum(np.asarray(steps), len(th) - 1)]
