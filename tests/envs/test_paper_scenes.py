"""The RND-AGV paper's four scene presets (configs/env/agv_{simple,complex}_{static,dynamic})
and the moving goal of the dynamic ones."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import rndx  # noqa: F401  (registers the ids)
from rndx.envs import make_sb3_vec_env
from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.paths import config_dir
from tests.envs.test_expert import run_episodes

# preset -> the paper's episode cap
PRESETS = {
    "agv_simple_static": 2000,
    "agv_simple_dynamic": 2000,
    "agv_complex_static": 3000,
    "agv_complex_dynamic": 4000,
}
DYNAMIC = [p for p in PRESETS if p.endswith("dynamic")]
STATIC = [p for p in PRESETS if p.endswith("static")]
# far from every start region: where a test parks the goal and the moving obstacles
FAR_GOAL_PATH = {"small": ((16.0, 2.0), (16.0, 8.0)), "large": ((30.0, 8.0), (24.0, 8.0))}


@pytest.fixture(scope="module")
def presets() -> Iterator[dict[str, DictConfig]]:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield {p: compose("train", overrides=[f"env={p}"]).env for p in PRESETS}


def _kwargs(env: DictConfig) -> dict:
    return OmegaConf.to_container(env.kwargs)


def _core(env: DictConfig, n: int, seed: int = 0) -> AGVCore:
    core = AGVCore(n, AGVConfig(**_kwargs(env)))
    core.seed([seed + i for i in range(n)])
    core.reset_envs(np.arange(n))
    core.observe()
    return core


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_matches_the_paper(presets: dict, preset: str) -> None:
    env = presets[preset]
    assert env.max_episode_steps == PRESETS[preset]
    kw = _kwargs(env)
    assert kw["reward"] == "sparse"
    assert kw["layout"] == ("small" if "simple" in preset else "large")
    if preset in DYNAMIC:
        assert kw["goal_speed"] > 0 and kw["n_agvs"] > 0 and kw["n_pedestrians"] > 0
    else:
        assert kw.get("goal_speed", 0.0) == 0.0 and kw.get("n_agvs", 0) == 0


@pytest.mark.parametrize("preset", DYNAMIC)
def test_goal_moves_in_dynamic_presets_and_the_observation_follows(
    presets: dict, preset: str
) -> None:
    core = _core(presets[preset], 8)
    cfg, nb = core.cfg, core.cfg.n_beams
    for _ in range(30):
        before = core.goal.copy()
        core.step(np.zeros((core.n, 2)))
        obs = core.observe()
        step = np.hypot(*(core.goal - before).T)
        # every goal moves goal_speed * dt per step (a bounce at a path end moves it less)
        assert np.all(step <= cfg.goal_speed * cfg.dt + 1e-9)
        assert np.median(step) == pytest.approx(cfg.goal_speed * cfg.dt)
        # observed goal distance and bearing are those of the moved goal
        d = core.goal - core.pos
        np.testing.assert_allclose(obs[:, nb] * core.diag, np.hypot(*d.T), rtol=1e-5, atol=1e-5)
        bearing = np.arctan2(d[:, 1], d[:, 0]) - core.theta
        np.testing.assert_allclose(obs[:, nb + 1], np.cos(bearing), atol=1e-5)
        np.testing.assert_allclose(obs[:, nb + 2], np.sin(bearing), atol=1e-5)


@pytest.mark.parametrize("preset", DYNAMIC)
def test_moving_goal_ping_pongs_on_a_clear_aisle_path(presets: dict, preset: str) -> None:
    core = _core(presets[preset], 16, seed=3)
    cfg = core.cfg
    start = core.goal.copy()
    for i in range(core.n):  # the path keeps the goal out of shelves and walls
        assert core.world.segment_clear(core.goal_p0[i], core.goal_p1[i], 0.3)
        assert core.goal_len[i] == pytest.approx(cfg.goal_travel)
    np.testing.assert_allclose(start, core.goal_p0)
    # out to the far end and back: after 2 * travel / speed seconds it is where it started
    period = int(round(2 * cfg.goal_travel / (cfg.goal_speed * cfg.dt)))
    for t in range(period):
        core.step(np.zeros((core.n, 2)))
        if t + 1 == period // 2:
            np.testing.assert_allclose(core.goal, core.goal_p1, atol=1e-6)
        if t + 1 == 3 * period // 4:  # on the way back, halfway: it does not park at p1
            np.testing.assert_allclose(core.goal, (core.goal_p0 + core.goal_p1) / 2, atol=1e-6)
    np.testing.assert_allclose(core.goal, start, atol=1e-6)


@pytest.mark.parametrize("preset", STATIC)
def test_goal_stays_put_in_static_presets(presets: dict, preset: str) -> None:
    core = _core(presets[preset], 8)
    goal = core.goal.copy()
    rng = np.random.default_rng(0)
    for _ in range(50):
        core.step(rng.uniform(-1, 1, (core.n, 2)))
        core.observe()
        np.testing.assert_array_equal(core.goal, goal)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_episode_limit_of_each_preset(presets: dict, preset: str) -> None:
    """A parked vehicle (zero actions, goal and obstacles kept away) is truncated exactly at
    the preset's cap, through the SB3 face that training uses."""
    env = presets[preset]
    venv = make_sb3_vec_env(env.id, 1, 0, int(env.max_episode_steps), _kwargs(env))
    core = venv.unwrapped.core
    options = {"start": (2.0, core.height - 1.5, 0.0), "goal": FAR_GOAL_PATH[core.cfg.layout][0]}
    if core.cfg.goal_speed > 0:
        options["goal_path"] = FAR_GOAL_PATH[core.cfg.layout]
    if core.m:
        options["obstacles"] = np.tile([core.width - 3.0, 2.0], (core.m, 1))
    venv.set_options(options)
    venv.reset()
    t, done = 0, [False]
    while not done[0] and t <= PRESETS[preset]:
        _, _, done, infos = venv.step(np.zeros((1, 2), np.float32))
        t += 1
    assert t == PRESETS[preset]
    assert infos[0]["TimeLimit.truncated"] and not infos[0]["is_success"]
    assert infos[0]["episode"]["l"] == PRESETS[preset]


@pytest.mark.parametrize("face", ["gymnasium", "sb3"])
def test_moving_goal_reached_counts_as_success(presets: dict, face: str) -> None:
    """The goal drives into a parked vehicle: the episode ends with success and +1."""
    env = presets["agv_simple_dynamic"]
    kwargs = {**_kwargs(env), "n_agvs": 0, "n_pedestrians": 0}
    options = {"start": (4.0, 6.0, 0.0), "goal_path": ((10.0, 6.0), (4.0, 6.0))}
    # the goal starts 6 m away and comes at 0.05 m per step: within the 0.5 m goal radius
    # after 110 steps, not before
    expected = int(np.ceil((6.0 - 0.5) / (env.kwargs.goal_speed * 0.1))) + 1
    if face == "gymnasium":
        import gymnasium as gym

        e = gym.make(env.id, max_episode_steps=env.max_episode_steps, **kwargs)
        e.reset(seed=0, options=options)
        t, terminated, truncated = 0, False, False
        while not (terminated or truncated) and t < 200:
            _, reward, terminated, truncated, info = e.step(np.zeros(2, np.float32))
            t += 1
        assert terminated and not truncated and info["is_success"] and reward == 1.0
    else:
        venv = make_sb3_vec_env(env.id, 1, 0, int(env.max_episode_steps), kwargs)
        venv.set_options(options)
        venv.reset()
        t, done = 0, [False]
        while not done[0] and t < 200:
            _, reward, done, infos = venv.step(np.zeros((1, 2), np.float32))
            t += 1
        assert infos[0]["is_success"] and not infos[0]["TimeLimit.truncated"]
        assert reward[0] == 1.0
    assert abs(t - expected) <= 1


def test_expert_catches_the_moving_goal(presets: dict) -> None:
    """The scripted expert follows a moving goal (obstacles removed: they block aisles)."""
    env = presets["agv_simple_dynamic"]
    kwargs = {**_kwargs(env), "n_agvs": 0, "n_pedestrians": 0}
    r = run_episodes(kwargs, int(env.max_episode_steps), 40, 777)
    assert r["success"] >= 0.95, r


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"goal_speed": -0.5}, "goal_speed=-0.5"),
        ({"goal_travel": 0.0}, "goal_travel=0.0"),
        ({"goal_speed": 0.5, "task": "pick_drop", "layout": "pick_drop"}, "task='reach'"),
    ],
)
def test_bad_moving_goal_options_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AGVConfig(**kwargs)
