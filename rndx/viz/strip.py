"""The monitor strip drawn under a video frame: RND-OE and ACE against their thresholds.

Input is the per-step list of monitor dicts of one episode (the contract of
:mod:`rndx.monitors`: ``rnd_oe``, ``ace``, ``rnd_oe_threshold``, ``ace_threshold``, ``alarm``,
``alarm_step``, ``step``). Each score gets a panel: its curve so far, its threshold (which may
vary over time) and, once the alarm fires, a red marker at the alarm step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

REQUIRED_KEYS = (
    "rnd_oe",
    "ace",
    "rnd_oe_threshold",
    "ace_threshold",
    "alarm",
    "alarm_step",
    "step",
)
PANELS = (("rnd_oe", "RND-OE"), ("ace", "ACE"))

BACKGROUND = (250, 250, 246)
GRID = (220, 220, 214)
TEXT = (40, 40, 40)
SCORE = {"rnd_oe": (30, 90, 200), "ace": (140, 60, 170)}
THRESHOLD = (230, 140, 20)
ALARM = (215, 30, 30)
ABOVE = (200, 80, 0)  # label colour of a score above its threshold
ALARM_TINT = (252, 228, 228)


def validate_history(history: Sequence[Mapping[str, Any]]) -> None:
    """Check every step's dict carries the contract keys.

    :raises ValueError: naming the first step and key that is missing or not a number.
    """
    for i, rec in enumerate(history):
        if not isinstance(rec, Mapping):
            raise ValueError(f"monitor record {i} is {type(rec).__name__}, expected a dict")
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:
            raise ValueError(
                f"monitor record {i} lacks {missing}; required keys: {', '.join(REQUIRED_KEYS)}"
            )
        for key in ("rnd_oe", "ace", "rnd_oe_threshold", "ace_threshold"):
            if not np.isfinite(float(rec[key])):
                raise ValueError(f"monitor record {i}: {key}={rec[key]!r} is not a finite number")


def panel_scales(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Upper y limit per panel: 1.15 x the largest score or threshold of the whole episode,
    so every frame of one video shares its axes."""
    scales = {}
    for key, _ in PANELS:
        values = [float(r[key]) for r in history] + [float(r[f"{key}_threshold"]) for r in history]
        top = max(values, default=0.0)
        scales[key] = 1.15 * top if top > 0 else 1.0
    return scales


def draw_monitor_strip(
    history: Sequence[Mapping[str, Any]],
    width: int,
    height: int = 96,
    horizon: int | None = None,
    scales: Mapping[str, float] | None = None,
) -> np.ndarray:
    """An (height, width, 3) uint8 strip of the monitor scores so far.

    :param history: the monitor dicts of the steps so far (may be empty: blank axes).
    :param width: strip width in pixels (the frame's width).
    :param height: strip height in pixels, split between the two panels.
    :param horizon: steps the x axis spans (the episode's length or step limit); None: the
        history's length.
    :param scales: upper y limit per score (:func:`panel_scales` of the whole episode);
        None: from ``history``.
    """
    import pygame

    if width < 64 or height < 32:
        raise ValueError(f"strip size {width}x{height} too small; need width >= 64, height >= 32")
    validate_history(history)
    if not pygame.font.get_init():
        pygame.font.init()
    font = pygame.font.Font(None, max(12, height // 6))
    horizon = max(int(horizon if horizon is not None else len(history)), 1)
    scales = dict(scales) if scales is not None else panel_scales(history)

    surf = pygame.Surface((width, height))
    surf.fill(BACKGROUND)
    left, right = 8, 8
    label_w = font.size("RND-OE 0.000")[0] + 6
    x0, x1 = left + label_w, width - right
    alarm_step = next((r["alarm_step"] for r in history if r["alarm"]), None)

    def to_x(step: float) -> int:
        return int(round(x0 + (x1 - x0) * min(step, horizon) / horizon))

    panel_h = height // len(PANELS)
    for p, (key, name) in enumerate(PANELS):
        top, bottom = p * panel_h + 3, (p + 1) * panel_h - 3
        scale = float(scales[key])

        def to_y(v: float, top: int = top, bottom: int = bottom, scale: float = scale) -> int:
            return int(round(bottom - (bottom - top) * min(max(v / scale, 0.0), 1.0)))

        if alarm_step is not None:
            ax = to_x(alarm_step)
            pygame.draw.rect(surf, ALARM_TINT, (ax, top, max(x1 - ax, 1), bottom - top))
        pygame.draw.line(surf, GRID, (x0, bottom), (x1, bottom))
        pygame.draw.line(surf, GRID, (x0, top), (x0, bottom))
        if history:
            steps = [int(r["step"]) for r in history]
            for series, colour, w in ((f"{key}_threshold", THRESHOLD, 1), (key, SCORE[key], 2)):
                pts = [(to_x(s), to_y(float(r[series]))) for s, r in zip(steps, history)]
                if len(pts) == 1:
                    pygame.draw.circle(surf, colour, pts[0], 2)
                else:
                    pygame.draw.lines(surf, colour, False, pts, w)
            value = float(history[-1][key])
            above = value > float(history[-1][f"{key}_threshold"])
            label = f"{name} {value:.3g}"
        else:
            above, label = False, name
        text = font.render(label, True, ABOVE if above else TEXT)
        surf.blit(text, (left, top + (bottom - top - text.get_height()) // 2))
        if alarm_step is not None:
            ax = to_x(alarm_step)
            pygame.draw.line(surf, ALARM, (ax, top), (ax, bottom), 2)
    if alarm_step is not None:
        tag = font.render(f"ALARM @ {int(alarm_step)}", True, ALARM)
        surf.blit(tag, (x1 - tag.get_width() - 2, 2))
    return np.ascontiguousarray(pygame.surfarray.pixels3d(surf).transpose(1, 0, 2))


def with_strip(frame: np.ndarray, strip: np.ndarray) -> np.ndarray:
    """The frame with the strip stacked under it (both (H, W, 3) uint8, same width)."""
    if frame.ndim != 3 or strip.ndim != 3 or frame.shape[1] != strip.shape[1]:
        raise ValueError(
            f"frame {frame.shape} and strip {strip.shape} must be (H, W, 3) of equal width"
        )
    return np.concatenate([frame[..., :3], strip[..., :3]], axis=0)


def strip_frames(
    frames: Sequence[np.ndarray],
    history: Sequence[Mapping[str, Any]],
    height: int = 96,
    horizon: int | None = None,
) -> list[np.ndarray]:
    """Every frame of one episode with its strip: frame t shows the first t records.

    ``frames`` holds the reset frame plus one per step, ``history`` one record per step, so
    frame 0 has blank axes and frame t the records of steps 0..t-1.

    :raises ValueError: if ``len(frames) != len(history) + 1``.
    """
    if len(frames) != len(history) + 1:
        raise ValueError(
            f"{len(frames)} frames for {len(history)} monitor records; expected one frame "
            "per record plus the reset frame"
        )
    validate_history(history)
    scales = panel_scales(history)
    horizon = horizon if horizon is not None else len(history)
    width = frames[0].shape[1]
    return [
        with_strip(f, draw_monitor_strip(history[:t], width, height, horizon, scales))
        for t, f in enumerate(frames)
    ]
