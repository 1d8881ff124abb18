"""Top-down frames of one vehicle's warehouse, drawn with pygame off screen (no display)."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless: never open a window
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

FLOOR = (236, 236, 228)
WALL = (60, 60, 66)
SHELF = (164, 120, 72)
PICK, DROP, START = (120, 170, 230), (130, 200, 130), (215, 215, 200)
VEHICLE, HEADING = (30, 90, 200), (255, 255, 255)
GOAL = (40, 170, 60)
RAY = (240, 120, 120)
TRAIL = (70, 130, 230)
AGV, PEDESTRIAN = (240, 150, 30), (150, 60, 170)


def render_frame(core, i: int = 0, px_per_m: int = 24) -> np.ndarray:
    """An (H, W, 3) uint8 frame of vehicle ``i``: shelves, walls, stations, moving obstacles,
    lidar rays, goal and the trail driven so far (if the core tracks vehicle ``i``)."""
    import pygame

    world = core.world
    lay = world.layout
    w_m, h_m = lay.size
    surf = pygame.Surface((int(w_m * px_per_m), int(h_m * px_per_m)))
    surf.fill(FLOOR)

    def to_px(xy: np.ndarray) -> tuple[int, int]:
        return int(xy[0] * px_per_m), int((h_m - xy[1]) * px_per_m)

    for ch, colour in (("P", PICK), ("D", DROP), ("S", START)):
        for c in lay.cells(ch):
            half = lay.cell / 2
            x0, y1 = to_px(c + (-half, half))
            pygame.draw.rect(surf, colour, (x0, y1, lay.cell * px_per_m, lay.cell * px_per_m))
    for box, shelf in zip(world.boxes[:-1], world.is_shelf[:-1]):
        x0, y1 = to_px(box[[0, 3]])
        x1, y0 = to_px(box[[2, 1]])
        pygame.draw.rect(surf, SHELF if shelf else WALL, (x0, y1, x1 - x0, y0 - y1))
        if shelf:
            pygame.draw.rect(surf, WALL, (x0, y1, x1 - x0, y0 - y1), width=1)

    pos, th = core.pos[i], core.theta[i]
    ends = pos + core.ranges[i][:, None] * np.stack(
        [np.cos(th + core.beam_offsets), np.sin(th + core.beam_offsets)], axis=1
    )
    for e in ends:
        pygame.draw.aaline(surf, RAY, to_px(pos), to_px(e))
    if core.track_env == i and len(core.trail) > 1:
        pygame.draw.lines(surf, TRAIL, False, [to_px(p) for p in core.trail], width=2)
    pygame.draw.circle(surf, GOAL, to_px(core.goal[i]), int(core.cfg.goal_radius * px_per_m))
    pygame.draw.circle(
        surf, (255, 255, 255), to_px(core.goal[i]), int(core.cfg.goal_radius * px_per_m * 0.4)
    )
    for j in range(core.m):
        colour = AGV if j < core.cfg.n_agvs else PEDESTRIAN
        pygame.draw.circle(
            surf, colour, to_px(core.obs_pos[i, j]), max(int(core.obs_radius[j] * px_per_m), 2)
        )
    r = max(int(core.cfg.radius * px_per_m), 3)
    pygame.draw.circle(surf, VEHICLE, to_px(pos), r)
    tip = pos + core.cfg.radius * np.array([np.cos(th), np.sin(th)])
    pygame.draw.line(surf, HEADING, to_px(pos), to_px(tip), width=2)
    # pygame arrays are (W, H, 3): transpose to the (H, W, 3) image convention
    return np.ascontiguousarray(pygame.surfarray.pixels3d(surf).transpose(1, 0, 2))
