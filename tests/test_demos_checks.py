"""rndx.demos: files that are not demos, demos of other env options, run= with env=, --help."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rndx.demos import Demos, check_env_kwargs, load_demos, main
from rndx.paths import config_dir

ENV_ID = "rndx/AGVWarehouse-v0"


def _blank_demos(env_id: str, env_kwargs: dict, episodes: int = 2, steps: int = 3) -> Demos:
    """``episodes`` successful episodes of ``steps`` zero observations and actions."""
    n = episodes * steps
    return Demos(
        np.zeros((n, 37), np.float32),
        np.zeros((n, 2), np.float32),
        np.repeat(np.arange(episodes), steps),
        np.ones(episodes, bool),
        env_id,
        env_kwargs,
        500,
    )


@pytest.fixture
def small_demos(tmp_path: Path) -> Path:
    demos = _blank_demos(ENV_ID, {"layout": "small", "pedestrian_speed": (0.5, 1.3)})
    return demos.save(tmp_path / "d.npz")


def test_a_file_that_is_not_demos_is_named_without_numpy_internals(tmp_path: Path) -> None:
    yaml = tmp_path / "config.yaml"
    yaml.write_text("name: agv_warehouse\nid: rndx/AGVWarehouse-v0\n")
    with pytest.raises(ValueError) as info:
        load_demos(yaml)
    text = str(info.value)
    assert f"{str(yaml)!r} is not an rndx demos file" in text and "python -m rndx.demos" in text
    assert "pickle" not in text


def test_other_env_options_are_named_with_both_values(small_demos: Path) -> None:
    with pytest.warns(UserWarning, match=r"layout: 'small' recorded, 'hard' in this run"):
        diff = check_env_kwargs(small_demos, {"layout": "hard"}, ENV_ID)
    assert diff == {"layout": ("small", "hard")}
    with pytest.warns(UserWarning, match=r"lidar_noise: 0.0 recorded, 0.3 in this run"):
        load_demos(small_demos, ENV_ID, env_kwargs={"layout": "small", "lidar_noise": 0.3})


def test_the_same_options_written_differently_are_no_difference(small_demos: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # unset = the env's default, a list = a tuple (JSON), an int = an equal float
        assert check_env_kwargs(small_demos, {}, ENV_ID) == {}
        assert check_env_kwargs(small_demos, {"pedestrian_speed": [0.5, 1.3]}, ENV_ID) == {}
        assert check_env_kwargs(small_demos, {"goal_reward": 1}, ENV_ID) == {}
        load_demos(small_demos, ENV_ID, env_kwargs={"layout": "small"})
        # another env id is load_demos' error; a missing file or no demos= is not checked here
        assert check_env_kwargs(small_demos, {"task": "pick_drop"}, "rndx/AGVPickDrop-v0") == {}
        assert check_env_kwargs(small_demos.parent / "missing.npz", {"layout": "hard"}) == {}
        assert check_env_kwargs(None, {"layout": "hard"}) == {}


def test_bullet_demos_compare_against_the_bullet_envs_defaults(tmp_path: Path) -> None:
    """The PyBullet AGV takes AGVConfig's options and its own (time_step): unset ones count
    as their defaults there too, so only a real difference warns."""
    bullet = "rndx/BulletAGVWarehouse-v0"
    demos = _blank_demos(bullet, {}).save(tmp_path / "bullet.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_env_kwargs(demos, {"layout": "small", "time_step": 1 / 120}, bullet) == {}
    with pytest.warns(UserWarning, match=r"lidar_noise: 0.0 recorded, 0.3 in this run"):
        assert check_env_kwargs(demos, {"lidar_noise": 0.3}, bullet) == {"lidar_noise": (0.0, 0.3)}
    with pytest.warns(UserWarning, match=r"time_step: 0.00833"):
        check_env_kwargs(demos, {"time_step": 0.01}, bullet)


@pytest.fixture
def agv_run(tmp_path: Path) -> Path:
    """A run dir's config.yaml (the env check comes before the model is loaded)."""
    run = tmp_path / "run"
    run.mkdir()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["env=agv_warehouse", "env.max_episode_steps=50"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run


@pytest.mark.parametrize("override", ["env=mujoco_push", "env.kwargs.layout=hard"])
def test_run_with_another_env_is_an_error_naming_both(
    agv_run: Path, override: str, capsys: pytest.CaptureFixture
) -> None:
    assert main([f"run={agv_run}", override, "episodes=1", f"out={agv_run / 'x.npz'}"]) == 2
    err = capsys.readouterr().err
    assert "agv_warehouse (rndx/AGVWarehouse-v0" in err and override in err
    assert ("rndx/MujocoPush-v0" if override.startswith("env=") else "'hard'") in err
    assert not (agv_run / "x.npz").exists()


def test_help_prints_usage_with_every_key_and_the_defaults(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m rndx.demos env=<env> episodes=N")
    for text in ("[noise=STD]", "[seed=S]", "episodes=200", "noise=0.0", "env=agv_warehouse"):
        assert text in out, text
    assert "mujoco_push" in out  # the env configs to pick from
    assert main(["-h"]) == 0


def test_error_usage_names_noise(capsys: pytest.CaptureFixture) -> None:
    assert main(["episodes=0"]) == 2
    assert "[noise=STD]" in capsys.readouterr().err


def test_out_without_the_suffix_gets_npz_and_no_temp_file_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "demo_x"
    assert main(["env=agv_warehouse", "episodes=2", f"out={out}"]) == 0
    written = tmp_path / "demo_x.npz"
    assert f"wrote {written}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_x.npz"]  # no empty file, no temp
    demos = load_demos(written, ENV_ID, (37,), (2,), successful_only=False)
    assert demos.n_episodes == 2


def test_the_expert_records_demos_in_the_bullet_agv() -> None:
    """The scripted expert drives the PyBullet robot too (one planner per env's core):
    successful, seeded, the episodes' first steps at the env's own start states."""
    pytest.importorskip("pybullet")
    import gymnasium as gym

    from rndx.demos import record

    bullet = "rndx/BulletAGVWarehouse-v0"
    demos = record(bullet, 4, seed=3, max_episode_steps=500, env_kwargs={"layout": "small"})
    assert demos.n_episodes == 4 and demos.success_rate == 1.0
    assert demos.env_id == bullet and demos.obs.shape[1:] == (37,)
    again = record(bullet, 4, seed=3, max_episode_steps=500, env_kwargs={"layout": "small"})
    np.testing.assert_array_equal(demos.obs, again.obs)
    env = gym.make(bullet, layout="small")
    first, _ = env.reset(seed=3)  # env 0 of the recording is seeded with seed + 0
    np.testing.assert_array_equal(demos.obs[0], first)
    env.close()


def test_a_run_on_the_default_options_is_compared_too(tmp_path: Path) -> None:
    """env_kwargs={} (a run on the env's defaults) still names what the demos changed."""
    hard = _blank_demos(ENV_ID, {"layout": "hard"}).save(tmp_path / "hard.npz")
    with pytest.warns(UserWarning, match=r"layout: 'hard' recorded, 'small' in this run"):
        load_demos(hard, ENV_ID, env_kwargs={})


def test_options_count_the_ids_registered_kwargs(tmp_path: Path) -> None:
    """rndx/AGVPickDrop-v0 registers layout=pick_drop: demos recorded without options and a
    run that names it are alike; only warn=False keeps a real difference quiet."""
    pick = "rndx/AGVPickDrop-v0"
    demos = _blank_demos(pick, {}).save(tmp_path / "pick.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_env_kwargs(demos, {"layout": "pick_drop", "task": "pick_drop"}, pick) == {}
        diff = check_env_kwargs(demos, {"layout": "small"}, pick, warn=False)
    assert diff == {"layout": ("pick_drop", "small")}


def test_run_with_its_own_env_named_again_is_no_error(
    agv_run: Path, capsys: pytest.CaptureFixture
) -> None:
    """env=agv_warehouse env.max_episode_steps=50 is the run's env: recording goes on (and
    stops here only because the fixture's run has no model.zip)."""
    argv = [f"run={agv_run}", "env=agv_warehouse", "env.max_episode_steps=50", "episodes=1"]
    assert main([*argv, f"out={agv_run / 'x.npz'}"]) == 2
    err = capsys.readouterr().err
    assert "records on the env it was trained on" not in err and "model.zip" in err
