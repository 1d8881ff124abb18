"""Test-wide setup: headless backends and one torch thread, before anything imports them."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Many small tests on one machine: extra BLAS/torch threads only contend.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
