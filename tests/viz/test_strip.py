"""The monitor strip drawn under video frames, on synthetic monitor dicts (the contract)."""

from __future__ import annotations

import numpy as np
import pytest

from rndx.viz.strip import (
    ABOVE,
    ALARM,
    ALARM_TINT,
    SCORE,
    THRESHOLD,
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


def _rows(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.flatnonzero(_has_colour(img, colour).any(axis=1))


def _cols(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.flatnonzero(_has_colour(img, colour).any(axis=0))


def _flat(n: int, **values: float) -> list[dict]:
    rec = {"rnd_oe": 0.1, "ace": 0.1, "rnd_oe_threshold": 0.5, "ace_threshold": 0.5, **values}
    return [{**rec, "alarm": False, "alarm_step": None, "step": t} for t in range(n)]


def test_threshold_line_is_drawn_at_the_threshold_not_at_the_score() -> None:
    """RND-OE panel: rows 3..45 of a 96 px strip, y limit 2: a threshold of 0.5 lies at row
    45 - 42 * 0.5 / 2 = 34.5, one of 1.5 at 13.5; the score (0.1) near the bottom."""
    scales = {"rnd_oe": 2.0, "ace": 1.0}
    for th, row in ((0.5, 34.5), (1.5, 13.5)):
        img = draw_monitor_strip(_flat(30, rnd_oe_threshold=th), 300, horizon=30, scales=scales)
        top = img[:48]
        rows = _rows(top, THRESHOLD)
        assert len(rows) and abs(rows.mean() - row) <= 1.0, (th, rows)
        assert _rows(top, SCORE["rnd_oe"]).min() > 40  # the score stays near the bottom
        assert len(_cols(top, THRESHOLD)) > 150  # a line across the plot


def test_each_score_is_drawn_in_its_own_panel_on_its_own_scale() -> None:
    """RND-OE in the upper panel, ACE in the lower (rows 51..93); ACE 0.5 of its y limit 1
    lies half-way up its panel, whatever RND-OE's limit."""
    img = draw_monitor_strip(
        _flat(30, rnd_oe=0.2, ace=0.5), 300, horizon=30, scales={"rnd_oe": 10.0, "ace": 1.0}
    )
    assert _rows(img, SCORE["rnd_oe"]).max() < 48
    ace_rows = _rows(img, SCORE["ace"])
    assert ace_rows.min() >= 48 and abs(ace_rows.mean() - 72) <= 2.0


def test_score_label_turns_orange_while_the_latest_score_exceeds_its_threshold() -> None:
    rising = _flat(10)
    for t, rec in enumerate(rising):
        rec["rnd_oe"] = 0.1 * (t + 1)  # over the 0.5 threshold from step 5 on
    scales = panel_scales(rising)
    below = draw_monitor_strip(rising[:3], 300, horizon=10, scales=scales)
    above = draw_monitor_strip(rising, 300, horizon=10, scales=scales)
    assert not _has_colour(below, ABOVE).any()
    assert _has_colour(above[:48], ABOVE).any() and not _has_colour(above[48:], ABOVE).any()


def test_alarm_tint_covers_the_plot_from_the_alarm_step_on() -> None:
    img = draw_monitor_strip(_history(100, alarm_at=60), 300, horizon=100)
    marker = np.flatnonzero(_has_colour(img, ALARM).sum(axis=0) > img.shape[0] // 3)
    tint = _cols(img, ALARM_TINT)
    assert len(tint) > 50 and tint.min() >= marker.min() - 1


def test_the_x_axis_spans_the_horizon_and_frames_share_their_axes() -> None:
    hist = _history(10)  # rnd_oe rising from 0.2 to 0.29
    for rec in hist:
        rec["rnd_oe"] *= 4.0  # 0.8 to 1.16: above the threshold, so it sets the y limit
    full = draw_monitor_strip(hist, 300, horizon=10)
    quarter = draw_monitor_strip(hist, 300, horizon=40)
    x = _cols(full, SCORE["rnd_oe"])
    q = _cols(quarter, SCORE["rnd_oe"])
    assert q.min() == x.min() and (q.max() - q.min()) < 0.3 * (x.max() - x.min())
    frames = [np.zeros((8, 300, 3), np.uint8)] * 11
    out = strip_frames(frames, hist, height=96, horizon=40)
    last = _cols(out[-1][8:], SCORE["rnd_oe"])
    assert (last.max() - last.min()) < 0.3 * (x.max() - x.min())  # the horizon given
    # every frame draws the first points where the last frame does (one y limit per episode)
    first = x.min()
    for t in (3, 10):
        col = _has_colour(out[t][8:], SCORE["rnd_oe"])[:, first : first + 3]
        want = _has_colour(out[-1][8:], SCORE["rnd_oe"])[:, first : first + 3]
        np.testing.assert_array_equal(col, want)
    # steps past the horizon stay at the plot's right end (x 292; the 8 px margin stays blank)
    long = draw_monitor_strip(_history(30), 300, horizon=20)
    assert _cols(long, SCORE["rnd_oe"]).max() <= 294


def test_a_score_above_the_y_limit_is_drawn_at_the_top_of_its_own_panel() -> None:
    """Scales given by the caller may be lower than a score: it is clipped to its panel's
    top row (3), not drawn off the panel."""
    img = draw_monitor_strip(_flat(20, rnd_oe=5.0), 300, horizon=20, scales={"rnd_oe": 1, "ace": 1})
    rows = _rows(img, SCORE["rnd_oe"])
    assert len(rows) and rows.min() >= 2 and rows.max() <= 4, rows
