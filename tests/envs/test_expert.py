"""The scripted AGV expert: it must solve every static layout (>= 95% of seeded episodes).

The success-rate tests drive the batched core directly (one numpy step for all episodes, so
100+ episodes per layout take a second or two); one test goes through the Gymnasium vector
face to check the expert copes with NEXT_STEP autoreset, one through the single env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rndx  # noqa: F401  (registers the ids)
from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.envs.experts import AGVExpert, expert_actions

# layout -> (config kwargs, max_episode_steps), as the brief's time limits for each layout
STATIC = {
    "small": ({"layout": "small"}, 500),
    "large": ({"layout": "large"}, 800),
    "hard": ({"layout": "hard"}, 1000),
    "pick_drop": ({"layout": "pick_drop", "task": "pick_drop"}, 800),
}
EPISODES = 100
SEED = 12345


def run_episodes(kwargs: dict, max_steps: int, n: int, seed: int) -> dict[str, float]:
    """One episode on each of n vehicles of a core seeded seed, seed+1, ...: success rate,
    collision rate, mean successful episode length, planning time."""
    core = AGVCore(n, AGVConfig(**kwargs))
    core.seed([seed + i for i in range(n)])
    core.reset_envs(np.arange(n))
    core.observe()
    expert = AGVExpert(core)
    done = np.zeros(n, bool)
    success = np.zeros(n, bool)
    collision = np.zeros(n, bool)
    length = np.full(n, max_steps)
    for t in range(max_steps):
        actions = expert.act()
        assert actions.shape == (n, 2) and np.all(np.abs(actions) <= 1.0)
        _, events = core.step(actions)
        core.observe()
        new = ~done & (events["success"] | events["collision"])
        success |= new & events["success"]
        collision |= new & events["collision"]
        length[new] = t + 1
        done |= new
        if done.all():
            break
    return {
        "success": success.mean(),
        "collision": collision.mean(),
        "length": float(length[success].mean()) if success.any() else float("nan"),
        "plan_ms": 1e3 * float(np.mean(expert.plan_times)),
        "plans": len(expert.plan_times),
    }


@pytest.mark.parametrize("layout", list(STATIC))
def test_expert_solves_static_layouts(layout: str) -> None:
    kwargs, max_steps = STATIC[layout]
    r = run_episodes(kwargs, max_steps, EPISODES, SEED)
    print(
        f"\n[expert] {layout}: success {r['success']:.3f} collision {r['collision']:.3f} "
        f"over {EPISODES} episodes (seeds {SEED}..{SEED + EPISODES - 1}), mean length "
        f"{r['length']:.1f} steps, {r['plans']} plans at {r['plan_ms']:.1f} ms"
    )
    assert r["success"] >= 0.95, r


def test_expert_dynamic_success_rate_is_reported() -> None:
    """No bar: the expert only stops for moving obstacles, which do not avoid it."""
    spec = gym.spec("rndx/AGVWarehouseDynamic-v0")
    r = run_episodes(dict(spec.kwargs), spec.max_episode_steps, EPISODES, SEED)
    print(
        f"\n[expert] dynamic (small, {spec.kwargs}): success {r['success']:.3f} "
        f"collision {r['collision']:.3f} over {EPISODES} episodes, mean length "
        f"{r['length']:.1f}"
    )
    assert 0.0 <= r["success"] <= 1.0


def test_cost_to_go_fields_are_cached_per_goal() -> None:
    """One Dijkstra field per goal cell, reused on the next call (planning cost is paid once
    per goal, not per step); its speed is a benchmark matter, not a test's."""
    core = AGVCore(1, AGVConfig(layout="large"))
    expert = AGVExpert(core)
    goals = core.goal_cells[:6]
    fields = [expert.field(g) for g in goals]
    assert len(expert.fields) == len(goals)
    assert expert.field(goals[0]) is fields[0]  # cached: no new field
    assert len(expert.fields) == len(goals)


def test_expert_through_the_vector_face_with_autoreset() -> None:
    """NEXT_STEP autoreset: the expert replans by itself when an env restarts (step 0, new
    goal); calling reset(idx) for the ended envs is allowed too."""
    n, max_steps = 16, 500
    venv = gym.make_vec(
        "rndx/AGVWarehouse-v0",
        num_envs=n,
        vectorization_mode="vector_entry_point",
        layout="small",
        max_episode_steps=max_steps,
    )
    venv.reset(seed=7)
    expert = AGVExpert(venv.unwrapped.core)
    ended = np.zeros(n, bool)
    outcomes: list[bool] = []
    episodes = np.zeros(n, int)
    while episodes.min() < 3:
        _, _, term, trunc, info = venv.step(expert.act())
        done = term | trunc
        for i in np.nonzero(done & ~ended)[0]:
            if episodes[i] < 3:
                outcomes.append(bool(info["is_success"][i]))
            episodes[i] += 1
        expert.reset(np.nonzero(done)[0])
        ended = done
    venv.close()
    assert len(outcomes) == 3 * n
    assert np.mean(outcomes) >= 0.95, np.mean(outcomes)


def test_expert_actions_on_a_single_env() -> None:
    env = gym.make("rndx/AGVPickDrop-v0")
    successes = 0
    for ep in range(5):
        env.reset(seed=100 + ep)
        while True:
            a = expert_actions(env)
            assert a.shape == (2,) and np.all(np.abs(a) <= 1.0)
            _, _, term, trunc, info = env.step(a)
            if term or trunc:
                successes += bool(info["is_success"])
                break
    assert env.unwrapped._rndx_expert.core is env.unwrapped.core
    assert successes == 5


def test_start_next_to_a_shelf_corner_backs_out() -> None:
    """A start inside the inflated zone plans from the nearest free cell without hitting the
    corner (pick_drop seed 1316 once clipped the shelf corner at (3, 9))."""
    core = AGVCore(1, AGVConfig(layout="small"))
    core.seed([0])
    core.reset_envs(np.arange(1))
    core.place(0, {"start": (2.63, 9.01, -0.57), "goal": (16.0, 3.5)})
    expert = AGVExpert(core)
    for _ in range(500):
        _, events = core.step(expert.act())
        assert not events["collision"][0]
        if events["success"][0]:
            break
    assert events["success"][0]
