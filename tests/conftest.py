"""Test-wide setup: headless backends and one torch thread, before anything imports them."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Many small tests on one machine: extra BLAS/torch threads only contend.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _sb3_log_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SB3 makes a folder /tmp/SB3-<time> for every model that learns without a logger of
    its own (many tests' tiny agents; rndx.train sets its own): here they go under pytest's
    temporary directory, which pytest prunes, instead of piling up in /tmp."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
