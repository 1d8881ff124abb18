"""Conformal thresholds, alarm rules and failure metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rndx.monitors.alarms import first_alarm, rule_holds
from rndx.monitors.calibration import (
    at_steps,
    conformal_rank,
    cp_band,
    cp_constant,
    cp_joint,
    min_calibration,
    order_statistic,
    rollouts_needed,
    thresholds,
    time_varying,
)
from rndx.monitors.metrics import failure_metrics, false_alarm_rate
from rndx.monitors.scores import window_sums


def test_order_statistic_hand_computed():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0, 10.0]  # n = 10
    # delta 0.2: k = ceil(11 * 0.8) = ceil(8.8) = 9 -> 9th smallest = 9
    assert conformal_rank(10, 0.2) == 9
    assert order_statistic(values, 0.2) == 9.0
    # delta 0.5: k = ceil(5.5) = 6 -> 6
    assert order_statistic(values, 0.5) == 6.0
    # exact product: n = 19, delta = 0.1 -> (n+1)(1-delta) = 18 exactly -> k = 18
    assert conformal_rank(19, 0.1) == 18
    # np.quantile interpolates below the order statistic (FIPER's code)
    assert np.quantile(values, 0.8) < order_statistic(values, 0.2)


def test_too_few_rollouts_say_how_many_are_needed():
    assert min_calibration(0.1) == 9
    assert min_calibration(0.05) == 19
    with pytest.raises(ValueError, match="at least 19"):
        cp_constant([np.ones(5)] * 10, 0.05)
    with pytest.raises(ValueError, match="delta"):
        conformal_rank(10, 1.5)


@pytest.mark.parametrize("delta", [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
def test_rollouts_needed_is_exact_for_each_kind(delta):
    from rndx.monitors.calibration import cp_joint

    fits = {
        "cp_constant": lambda tr: thresholds(tr, delta, "cp_constant"),
        "cp_band": lambda tr: thresholds(tr, delta, "cp_band"),
        "cp_joint": lambda tr: cp_joint(tr, tr, delta),
    }
    rng = np.random.default_rng(0)
    for kind, fit in fits.items():
        need = rollouts_needed(delta, kind)
        assert np.isfinite(fit(_rollouts(rng, need))[0]).all()
        with pytest.raises(ValueError, match=f"at least {'one' if need == 1 else need}"):
            fit(_rollouts(rng, need - 1) if need > 1 else [])
    assert rollouts_needed(delta, "time_varying") == 1
    assert rollouts_needed(0.5, "cp_band") == 4  # two to fit the band, two for the level
    with pytest.raises(ValueError, match=r"cp_band at delta=0.5 needs at least 4 .*got 3"):
        cp_band(_rollouts(rng, 3), 0.5)


def _rollouts(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Exchangeable successful rollouts: random lengths, autocorrelated positive scores."""
    out = []
    for _ in range(n):
        t = int(rng.integers(20, 60))
        x = np.abs(np.cumsum(rng.normal(0.0, 1.0, t)) * 0.2 + rng.normal(1.0, 0.3, t))
        out.append(window_sums(x, 5))
    return out


@pytest.mark.parametrize("kind", ["cp_constant", "cp_band"])
def test_false_alarm_rate_stays_within_delta(kind):
    """Over many seeds: calibrate on n successful rollouts, count alarms on a fresh one. The
    empirical rate stays within delta + 3 binomial standard errors, and is not trivially 0
    (a threshold of +inf would pass the upper bound)."""
    delta, n, trials = 0.1, 30, 1500
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(trials):
        cal = _rollouts(rng, n)
        th = cp_constant(cal, delta) if kind == "cp_constant" else cp_band(cal, delta)
        fresh = _rollouts(rng, 1)[0]
        alarms += bool(np.any(fresh > at_steps(th, np.arange(len(fresh)))))
    rate = alarms / trials
    tol = 3.0 * math.sqrt(delta * (1 - delta) / trials)
    assert rate <= delta + tol
    assert rate >= 0.03


def test_cp_band_is_an_upper_band_around_the_mean():
    rng = np.random.default_rng(1)
    cal = [np.linspace(0, 10, 40) + rng.normal(0, 0.5, 40) for _ in range(40)]
    band = cp_band(cal, 0.1)
    mean = np.mean(cal[:20], axis=0)
    assert band.shape == (40,)
    assert np.all(band > mean)  # the sign: threshold = mu + h * s with h > 0
    assert band[-1] > band[0] + 5  # it follows the trend
    # by hand: mu, s from the first half; h = the ceil((n+1)(1 - delta))-th smallest of the
    # second half's max_t (score_t - mu_t) / s_t (FIPER's code has mu - score: a lower band)
    std = np.std(cal[:20], axis=0)
    ratios = sorted(np.max((t - mean) / std) for t in cal[20:])
    h = ratios[math.ceil(21 * 0.9) - 1]
    np.testing.assert_allclose(band, mean + h * std, rtol=1e-9)


def test_time_varying_is_a_per_step_quantile():
    cal = [np.arange(5.0) + i for i in range(11)]  # at step t: t + {0..10}
    th = time_varying(cal, 0.1)
    np.testing.assert_allclose(th, np.arange(5.0) + 9.0)
    assert at_steps(th, 100) == th[-1]


def test_calibration_rejects_non_finite_scores():
    with pytest.raises(ValueError, match="NaN or inf"):
        cp_constant([np.array([1.0, np.inf])] * 20, 0.1)


def test_and_or_first_alarm_on_crafted_traces():
    rnd_over = np.array([0, 1, 1, 0, 1, 1], dtype=bool)
    ace_over = np.array([1, 0, 0, 0, 1, 0], dtype=bool)
    assert first_alarm(rule_holds("and", rnd_over, ace_over)) == 4
    assert first_alarm(rule_holds("or", rnd_over, ace_over)) == 0
    assert first_alarm(rule_holds("rnd_oe", rnd_over, ace_over)) == 1
    assert first_alarm(rule_holds("ace", rnd_over, ace_over)) == 0
    assert first_alarm(rule_holds("and", rnd_over, np.zeros(6, bool))) is None
    with pytest.raises(ValueError, match="allowed"):
        rule_holds("xor", rnd_over, ace_over)


def test_metrics_on_a_hand_made_table():
    # 4 failures (alarms at 10, 50, none, 0), 4 successes (one false alarm), max 100 steps
    failed = [True, True, True, True, False, False, False, False]
    alarms = [10, 50, None, 0, None, 30, None, None]
    m = failure_metrics(failed, alarms, 100)
    assert m["tpr"] == pytest.approx(3 / 4)
    assert m["tnr"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["dt"] == pytest.approx((0.1 + 0.5 + 0.0) / 3)
    assert m["twa"] == pytest.approx(0.5 * ((0.9 + 0.5 + 1.0) / 4 + 3 / 4))
    assert (m["n_fail"], m["n_succ"]) == (4, 4)
    only_ok = failure_metrics([False, False], [None, None], 100)
    assert math.isnan(only_ok["tpr"]) and only_ok["tnr"] == 1.0
    with pytest.raises(ValueError, match="labels"):
        failure_metrics([True], [], 100)


def test_cp_joint_holds_delta_for_the_and_alarm_and_flags_more_than_separate_thresholds():
    from rndx.monitors.calibration import cp_joint

    delta, n, trials = 0.1, 40, 600
    rng = np.random.default_rng(3)

    def pairs(k):
        out = []
        for _ in range(k):
            r = _rollouts(rng, 1)[0]
            out.append((r, window_sums(rng.random(len(r)), 5)))  # independent scores
        return out

    joint_alarms = separate_alarms = 0
    for _ in range(trials):
        cal = pairs(n)
        tr, ta = cp_joint([r for r, _ in cal], [a for _, a in cal], delta)
        sr = cp_constant([r for r, _ in cal], delta)
        sa = cp_constant([a for _, a in cal], delta)
        r, a = pairs(1)[0]
        joint_alarms += bool(np.any((r > tr[0]) & (a > ta[0])))
        separate_alarms += bool(np.any((r > sr[0]) & (a > sa[0])))
    tol = 3.0 * math.sqrt(delta * (1 - delta) / trials)
    assert 0.03 <= joint_alarms / trials <= delta + tol
    assert separate_alarms < joint_alarms  # per-score thresholds make AND over-cautious
    with pytest.raises(ValueError, match="pair up"):
        cp_joint([np.ones(3)] * 20, [np.ones(4)] * 20, delta)


def test_cp_band_holds_the_last_step_two_fitting_rollouts_reach():
    """Where only one fitting rollout is still running its spread is 0 and the band would
    collapse onto it (a huge h elsewhere): the last step with >= 2 holds instead."""
    rng = np.random.default_rng(4)
    n = rollouts_needed(0.2, "cp_band")
    lengths = [10] * (n // 2 - 1) + [20] + [10] * (n - n // 2)  # one long fitting rollout
    traces = [rng.normal(1.0, 0.3, k) for k in lengths]
    band = cp_band(traces, 0.2)
    assert len(band) == 20
    np.testing.assert_array_equal(band[10:], band[9])


def test_cp_joint_sets_lambda_on_the_second_half_only():
    """Split conformal: the first half sets the scales, the second the level; the
    rollouts that set the scales must not vote on lambda."""
    rng = np.random.default_rng(5)
    n = rollouts_needed(0.1, "cp_joint")
    rt = [rng.gamma(2.0, 1.0, 12) for _ in range(n)]
    at = [rng.gamma(2.0, 1.0, 12) for _ in range(n)]
    for i in range(n // 2):  # first half: large joint scores, but the same medians' scale
        rt[i] = rt[i] * 50.0
        at[i] = at[i] * 50.0
    s_r = np.median([t.max() for t in rt[: n // 2]])
    s_a = np.median([t.max() for t in at[: n // 2]])
    joint = [np.max(np.minimum(r / s_r, a / s_a)) for r, a in zip(rt[n // 2 :], at[n // 2 :])]
    lam = order_statistic(joint, 0.1)
    th_r, th_a = cp_joint(rt, at, 0.1)
    assert th_r[0] == pytest.approx(lam * s_r) and th_a[0] == pytest.approx(lam * s_a)


def test_false_alarm_rate_counts_the_successes_only():
    failed = [True, True, False, False, False, False]
    steps = [3, None, None, 7, None, None]  # one failure caught, one success alarmed
    assert false_alarm_rate(failed, steps) == pytest.approx(0.25)
    assert math.isnan(false_alarm_rate([True, True], [1, None]))
    with pytest.raises(ValueError, match="2 labels but 1 alarm steps"):
        false_alarm_rate([True, False], [None])
