"""rndx.record's building blocks without a trained run: video files (GIF timing, MP4 of odd
frame sizes) and one played episode (frames, return, success, gSDE noise per episode)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
from gymnasium import spaces

import rndx.record
from rndx.record import play_episode, write_video


def _frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """Frames with a horizontal gradient and a bright square that moves."""
    out = []
    for t in range(n):
        f = np.tile(np.linspace(0, 200, w, dtype=np.uint8)[None, :, None], (h, 1, 3))
        f[4:12, 2 + 3 * t : 10 + 3 * t] = 255
        out.append(f)
    return out


def test_a_gif_shows_each_frame_for_one_over_fps_and_loops(tmp_path: Path) -> None:
    path = write_video(_frames(3, 16, 24), tmp_path / "a.gif", fps=4.0)
    meta = iio.immeta(path)
    assert meta["duration"] == pytest.approx(250.0) and meta["loop"] == 0
    assert iio.imread(path).shape[:3] == (3, 16, 24)


def test_an_mp4_of_odd_size_is_padded_to_even_with_the_edge(tmp_path: Path) -> None:
    frames = _frames(5, 33, 35)
    path = write_video(frames, tmp_path / "odd.mp4", fps=10.0)
    reader = imageio.get_reader(path)
    try:
        back = [f for f in reader]
    finally:
        reader.close()
    assert len(back) == 5 and back[0].shape == (34, 36, 3)
    # the picture itself is kept (H.264 is lossy: compare on average)
    diff = np.abs(back[2][:33, :35].astype(int) - frames[2].astype(int))
    assert diff.mean() < 8, diff.mean()


class _ThreeSteps(gym.Env):
    """Three steps, reward 1, 2, 3; success at the end; frames show the step count."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        return np.zeros(2, np.float32), float(self.t), done, False, {"is_success": done}

    def render(self) -> np.ndarray:
        return np.full((4, 4, 3), self.t, np.uint8)


class _Policy:
    def predict(self, obs, deterministic=True):
        return np.zeros(2, np.float32), None


@pytest.mark.parametrize("deterministic", [False, True])
def test_an_episode_keeps_every_frame_and_draws_gsde_noise_once_when_stochastic(
    monkeypatch: pytest.MonkeyPatch, deterministic: bool
) -> None:
    draws: list[tuple[int, list[bool]]] = []
    monkeypatch.setattr(
        rndx.record, "resample_sde_noise", lambda m, n, s: draws.append((n, s.tolist()))
    )
    ep = play_episode(_ThreeSteps(), _Policy(), 0, deterministic, monitored=False)
    assert [int(f[0, 0, 0]) for f in ep.frames] == [0, 1, 2, 3]
    assert (ep.length, ep.ret, ep.success) == (3, 6.0, True)
    assert draws == ([] if deterministic else [(1, [True]), (1, [False]), (1, [False])])
