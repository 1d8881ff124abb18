"""The novelty map's pieces on hand-made inputs: visit counting (cells, repeats, resume,
the rollout-start copy), the bonus's mean over headings, which runs get a map, and the
map's orientation (y up)."""

from __future__ import annotations

import types
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from rndx.paths import config_dir
from rndx.viz.novelty import (
    VisitationCounter,
    novelty_grid,
    plot_novelty,
    supports_novelty_map,
)


def _counter(path: Path, size=(3.0, 2.0)) -> VisitationCounter:
    """A counter on a fake 3 m x 2 m warehouse, 2 cells per metre: counts (4, 6)."""
    world = types.SimpleNamespace(layout=types.SimpleNamespace(size=size))
    env = types.SimpleNamespace(
        unwrapped=types.SimpleNamespace(core=types.SimpleNamespace(world=world))
    )
    counter = VisitationCounter(path, cells_per_m=2)
    counter.model = types.SimpleNamespace(get_env=lambda: env)  # init_callback's model
    counter._on_training_start()
    return counter


def _step(counter: VisitationCounter, *poses: tuple[float, float]) -> None:
    counter.locals = {"infos": [{"pose": np.array([x, y, 1.0, 0.0])} for x, y in poses]}
    counter._on_step()


def test_visits_are_counted_in_the_cell_under_each_pose(tmp_path: Path) -> None:
    counter = _counter(tmp_path / "v.npz")
    assert counter.counts.shape == (4, 6)  # rows are y
    _step(counter, (0.2, 0.2), (2.9, 1.9), (2.9, 1.9))  # two envs in one cell: both count
    _step(counter, (1.3, 0.6), (5.0, -1.0))  # off the floor: the nearest edge cell
    want = np.zeros((4, 6), np.int64)
    want[0, 0] = want[1, 2] = want[0, 5] = 1
    want[3, 5] = 2
    np.testing.assert_array_equal(counter.counts, want)


def test_counts_resume_and_a_checkpoint_keeps_the_rollout_start(tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    counter = _counter(path)
    _step(counter, (0.2, 0.2))
    counter._on_rollout_start()
    _step(counter, (0.2, 0.2), (0.2, 0.2))
    counter.save(at_rollout_start=True)  # an interrupted rollout: only what came before it
    assert np.load(path)["counts"][0, 0] == 1
    counter.save()
    assert np.load(path)["counts"][0, 0] == 3
    resumed = _counter(path)
    _step(resumed, (0.2, 0.2))
    assert resumed.counts[0, 0] == 4 and resumed.counts.sum() == 4
    # counts of another layout are not added
    other = _counter(path, size=(4.0, 2.0))
    assert other.counts.shape == (4, 8) and other.counts.sum() == 0


@pytest.fixture(scope="module")
def world():
    env = gym.make("rndx/AGVWarehouse-v0")
    w = env.unwrapped.core.world
    env.close()
    return w


@pytest.mark.parametrize("headings", [2, 3, 4])
def test_the_bonus_is_the_mean_over_evenly_spaced_headings(world, headings: int) -> None:
    """A bonus of cos(heading) + 2: its mean over headings evenly spread on the circle is 2."""

    class Heading:
        def compute(self, poses):
            return poses[:, 2] + 2.0

    bonus, solid = novelty_grid(Heading(), world, resolution=1.0, headings=headings)
    np.testing.assert_allclose(bonus[~solid], 2.0, atol=1e-6)


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(
    ("overrides", "drawn"),
    [
        (["env=agv_warehouse", "agent=ppo_rnd"], True),
        (["env=bullet_agv_warehouse", "agent=ppo_rnd"], True),
        (
            ["env=agv_warehouse", "agent=ppo_rnd", "agent.intrinsic.intrinsic_input=pose_tiles"],
            True,
        ),
        (["env=agv_warehouse", "agent=ppo_rnd", "agent.intrinsic.intrinsic_input=obs"], False),
        (["env=agv_warehouse", "agent=ppo"], False),
        (["env=gym", "env.id=CartPole-v1", "agent=ppo_rnd"], False),
    ],
)
def test_a_map_is_drawn_for_agv_runs_whose_module_sees_the_pose(overrides, drawn) -> None:
    assert supports_novelty_map(_cfg(*overrides)) is drawn


def test_the_map_has_y_pointing_up(tmp_path: Path) -> None:
    """A bonus growing with y (row 0 is y = 0) is bright (viridis yellow) at the top of the
    picture and dark (purple) at the bottom."""
    import imageio.v3 as iio

    bonus = np.repeat(np.linspace(0.0, 1.0, 20)[:, None], 40, axis=1)
    img = iio.imread(plot_novelty(bonus, None, (4.0, 2.0), tmp_path / "m.png"))[..., :3]
    left = img[:, : img.shape[1] // 2].astype(int)  # the map, not its colour bar
    rows = np.arange(left.shape[0])[:, None]
    yellow = (left[..., 0] > 200) & (left[..., 1] > 200) & (left[..., 2] < 120)
    purple = (left[..., 0] < 100) & (left[..., 1] < 60) & (left[..., 2] > 60)
    assert yellow.sum() > 100 and purple.sum() > 100
    assert (
        np.broadcast_to(rows, yellow.shape)[yellow].mean()
        < np.broadcast_to(rows, purple.shape)[purple].mean()
    )


def test_a_pose_tiles_run_is_mapped_through_its_selector(
    world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_novelty_map hands the module what it trained on: the model's tiles of each pose
    (here the module's bonus is the index of the active x tile: floor(x))."""
    from omegaconf import OmegaConf

    import rndx.viz.novelty
    from rndx.intrinsic import InputSelector

    cfg = _cfg("env=agv_warehouse", "agent=ppo_rnd", "agent.intrinsic.intrinsic_input=pose_tiles")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    w, h = world.layout.size
    ny = int(h) + 1

    class TileModule:
        def compute(self, x):
            return x.argmax(axis=1) // ny

    selector = InputSelector("pose_tiles", extent=(w, h), tile_size=1.0, tilings=1)
    model = types.SimpleNamespace(intrinsic=TileModule(), selector=selector, num_timesteps=8)
    drawn = {}

    def plot(bonus, visits, size, path, title=""):
        drawn.update(bonus=bonus, size=size, title=title)
        return Path(path)

    monkeypatch.setattr(rndx.viz.novelty, "plot_novelty", plot)
    assert rndx.viz.novelty.write_novelty_map(run, model) == run / "novelty_map.png"
    bonus = drawn["bonus"]
    xs = np.broadcast_to(np.arange(0.05, w, 0.1), bonus.shape)  # the default 0.1 m grid
    free = ~np.isnan(bonus)
    np.testing.assert_array_equal(bonus[free], np.floor(xs[free]))
    assert drawn["size"] == (w, h) and "8 steps" in drawn["title"]
