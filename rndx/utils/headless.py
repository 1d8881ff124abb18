"""Headless rendering defaults for the command-line entry points."""

from __future__ import annotations

import os


def use_headless_backends() -> None:
    """Default MuJoCo to EGL and SDL (pygame) to its dummy driver.

    Training and evaluation run on servers without a display; setdefault keeps a user's
    explicit choice (e.g. ``MUJOCO_GL=glfw`` to watch a window).
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
