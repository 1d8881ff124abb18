"""The monitor strip drawn under video frames, on synthetic monitor dicts (the contract)."""

from __future__ import annotations

import numpy as np
import pytest

from rndx.viz.strip import (
    ALARM,
    SCORE,
    draw_monitor_strip,
    panel_scales,
    strip_frames,
    validate_history,
    with_strip,
)


def _history(n: int, alarm_at: int | None = None, rnd: float = 0.2) -> list[dict]:
    return [
        {
            "rnd_oe": rnd + 0.01 * t,
            "ace": 0.1,
            "rnd_oe_threshold": 0.5,
            "ace_threshold": 0.3 + 0.001 * t,  # time-varying thresholds are allowed
            "alarm": alarm_at is not None and t >= alarm_at,
            "alarm_step": alarm_at if alarm_at is not None and t >= alarm_at else None,
            "step": t,
        }
        for t in range(n)
    ]


def _has_colour(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Boolean (H, W): pixels of exactly ``colour``."""
    return (img == np.array(colour, dtype=np.uint8)).all(axis=-1)


def test_alarm_is_marked_at_its_step_and_only_after_it_fires() -> None:
    width, horizon = 300, 100
    quiet = draw_monitor_strip(_history(100), width, horizon=horizon)
    assert not _has_colour(quiet, ALARM).any()

    loud = draw_monitor_strip(_history(100, alarm_at=60), width, horizon=horizon)
    red_cols = np.flatnonzero(_has_colour(loud, ALARM).sum(axis=0) > loud.shape[0] // 3)
    assert 1 <= len(red_cols) <= 3  # a thin vertical line through both panels
    # a history cut before the alarm step shows no marker yet
    before = draw_monitor_strip(_history(100, alarm_at=60)[:60], width, horizon=horizon)
    assert not _has_colour(before, ALARM).any()


def test_alarm_marker_moves_with_the_alarm_step() -> None:
    def marker_x(at: int) -> float:
        img = draw_monitor_strip(_history(100, alarm_at=at), 300, horizon=100)
        red = _has_colour(img, ALARM).sum(axis=0) > img.shape[0] // 3
        return float(np.flatnonzero(red).mean())

    early, late = marker_x(20), marker_x(80)
    assert late - early > 0.5 * (300 - 100)  # 60% of the horizon apart, in a ~200 px plot


def test_score_curve_rises_with_the_score() -> None:
    low = draw_monitor_strip(_history(50, rnd=0.0), 300, horizon=50, scales={"rnd_oe": 2, "ace": 1})
    high = draw_monitor_strip(
        _history(50, rnd=1.5), 300, horizon=50, scales={"rnd_oe": 2, "ace": 1}
    )
    rows_low = np.flatnonzero(_has_colour(low, SCORE["rnd_oe"]).any(axis=1))
    rows_high = np.flatnonzero(_has_colour(high, SCORE["rnd_oe"]).any(axis=1))
    assert rows_high.mean() < rows_low.mean()  # higher score: drawn nearer the top


def test_strip_frames_stack_one_strip_per_frame() -> None:
    hist = _history(10, alarm_at=5)
    frames = [np.full((40, 200, 3), i, dtype=np.uint8) for i in range(11)]
    out = strip_frames(frames, hist, height=64, horizon=20)
    assert len(out) == 11
    assert all(f.shape == (104, 200, 3) for f in out)
    assert (out[3][:40] == 3).all()  # the env frame is kept untouched above the strip
    assert not _has_colour(out[5][40:], ALARM).any()  # records 0..4: no alarm yet
    assert _has_colour(out[6][40:], ALARM).any()  # record 5 fired


def test_scales_cover_the_whole_episode() -> None:
    scales = panel_scales(_history(100))
    assert scales["rnd_oe"] == pytest.approx(1.15 * (0.2 + 0.99))
    assert scales["ace"] == pytest.approx(1.15 * (0.3 + 0.099))


def test_bad_records_and_sizes_are_rejected_with_the_reason() -> None:
    hist = _history(3)
    del hist[1]["ace_threshold"]
    with pytest.raises(ValueError, match=r"record 1 lacks \['ace_threshold'\]"):
        validate_history(hist)
    bad = _history(2)
    bad[0]["rnd_oe"] = float("nan")
    with pytest.raises(ValueError, match="rnd_oe=nan is not a finite number"):
        draw_monitor_strip(bad, 200)
    with pytest.raises(ValueError, match="too small"):
        draw_monitor_strip(_history(2), 20)
    with pytest.raises(ValueError, match="3 frames for 1 monitor records"):
        strip_frames([np.zeros((4, 80, 3), np.uint8)] * 3, _history(1))
    with pytest.raises(ValueError, match="equal width"):
        with_strip(np.zeros((4, 80, 3), np.uint8), np.zeros((4, 90, 3), np.uint8))
