"""rndx.demos recording and filtering: episodes start where an evaluation with the same seed
starts, each episode holds its own steps only, the policy is told where episodes start, and
keeping the successful episodes re-numbers them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rndx.demos import Demos, load_demos, record
from rndx.evaluate import _episode_quotas, evaluate_policy_episodes

ENV_ID = "rndx/AGVWarehouse-v0"
SMALL = {"layout": "small"}


class StandStill:
    """A model that never moves (every episode runs to the step limit) and logs, per env,
    the observations it was told start an episode."""

    def __init__(self) -> None:
        self.starts: dict[int, list[np.ndarray]] = {}

    def predict(self, obs, episode_start=None, deterministic=True):
        for i in np.flatnonzero(episode_start):
            self.starts.setdefault(int(i), []).append(np.array(obs[i], copy=True))
        return np.zeros((len(obs), 2), np.float32), None

    def first_episodes(self, quotas: np.ndarray) -> np.ndarray:
        """The start observations of each env's first quota episodes, env by env."""
        return np.stack([o for i, k in enumerate(quotas) for o in self.starts[i][:k]])


def test_episodes_start_as_the_evaluation_of_the_same_seed_and_run_to_the_limit() -> None:
    """10 episodes: 8 envs (envs 6 and 7 run two each), 3 steps each, the model told of each
    episode's first step, the start states the evaluation of seed 4 sees."""
    model = StandStill()
    demos = record(ENV_ID, 10, seed=4, max_episode_steps=3, env_kwargs=SMALL, model=model)
    assert demos.n_episodes == 10 and demos.lengths.tolist() == [3] * 10
    assert demos.source == "model" and demos.max_episode_steps == 3
    firsts = demos.obs[demos.episode_start]
    quotas = _episode_quotas(10, 8)
    assert quotas.tolist() == [1] * 6 + [2, 2]
    np.testing.assert_array_equal(firsts, model.first_episodes(quotas))  # told at each start
    evaluated = StandStill()
    result = evaluate_policy_episodes(evaluated, ENV_ID, 10, 4, 3, SMALL)
    assert result["episodes"] == 10
    np.testing.assert_array_equal(firsts, evaluated.first_episodes(quotas))
    # the two episodes of env 6 are different episodes (seeded reset, then autoreset)
    assert not np.array_equal(firsts[6], firsts[7])


def _mixed() -> Demos:
    """Episodes of 2, 1 and 3 steps; the middle one failed."""
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    return Demos(
        obs, -obs, np.array([0, 0, 1, 2, 2, 2]), np.array([True, False, True]), ENV_ID, {}, 7
    )


def test_keeping_the_successful_episodes_numbers_them_from_zero(tmp_path: Path) -> None:
    kept = _mixed().successful()
    assert kept.episode.tolist() == [0, 0, 1, 1, 1]
    assert kept.lengths.tolist() == [2, 3] and kept.success.tolist() == [True, True]
    assert kept.episode_start.tolist() == [True, False, True, False, False]
    np.testing.assert_array_equal(kept.obs[:, 0], [0, 2, 6, 8, 10])
    np.testing.assert_array_equal(kept.actions, -kept.obs)
    loaded = load_demos(_mixed().save(tmp_path / "m.npz"))  # successful_only by default
    assert loaded.episode.tolist() == [0, 0, 1, 1, 1] and loaded.max_episode_steps == 7
    with np.load(tmp_path / "m.npz") as f:
        assert f["lengths"].tolist() == [2, 1, 3]


def test_no_step_limit_is_kept_as_none(tmp_path: Path) -> None:
    demos = _mixed()
    demos.max_episode_steps = None
    assert load_demos(demos.save(tmp_path / "n.npz")).max_episode_steps is None
