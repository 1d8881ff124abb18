"""Headless rendering defaults for the command-line entry points."""

from __future__ import annotations

import logging
import os


def use_headless_backends() -> None:
    """Default MuJoCo to EGL and SDL (pygame) to its dummy driver.

    Training and evaluation run on servers without a display; setdefault keeps a user's
    explicit choice (e.g. ``MUJOCO_GL=glfw`` to watch a window). PyOpenGL (MuJoCo's EGL
    renderer) logs "No OpenGL_accelerate module loaded" at INFO on import, which Hydra's INFO
    job logging would print and write into every run's train.log: its loggers log warnings
    only (a level a user set on them first is kept).
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    opengl = logging.getLogger("OpenGL")
    if opengl.level == logging.NOTSET:
        opengl.setLevel(logging.WARNING)
