"""gSDE agents sampled outside training: one exploration-noise draw per episode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rndx.envs import make_sb3_vec_env
from rndx.monitors.policies import SB3PolicyAdapter
from rndx.utils.sde import resample_sde_noise


def _ppo(use_sde: bool) -> PPO:
    env = make_sb3_vec_env("rndx/AGVWarehouse-v0", 4, 0, 20, {})
    return PPO("MlpPolicy", env, n_steps=16, batch_size=64, use_sde=use_sde, seed=0)


@pytest.fixture(scope="module")
def sde_model() -> PPO:
    return _ppo(True)


def test_each_starting_episode_gets_its_own_draw_and_running_ones_keep_theirs(sde_model):
    dist = sde_model.policy.action_dist
    resample_sde_noise(sde_model, 3)  # another batch size than the 4 training envs: all new
    first = dist.exploration_matrices.clone()
    assert first.shape[0] == 3
    assert not torch.equal(first[0], first[1])
    resample_sde_noise(sde_model, 3, np.array([False, True, False]))
    after = dist.exploration_matrices
    assert torch.equal(after[0], first[0]) and torch.equal(after[2], first[2])
    assert not torch.equal(after[1], first[1])
    held = after.clone()
    resample_sde_noise(sde_model, 3, None)  # no episode information: keep the draws
    resample_sde_noise(sde_model, 3, np.zeros(3, dtype=bool))
    assert torch.equal(dist.exploration_matrices, held)


def test_a_batch_of_one_redraws_its_single_matrix_at_episode_start(sde_model):
    dist = sde_model.policy.action_dist
    resample_sde_noise(sde_model, 1, np.array([True]))
    m = dist.exploration_mat.clone()
    resample_sde_noise(sde_model, 1, np.array([False]))
    assert torch.equal(dist.exploration_mat, m)
    resample_sde_noise(sde_model, 1, np.array([True]))
    assert not torch.equal(dist.exploration_mat, m)


def test_adapter_samples_episodes_differently_and_holds_the_noise_within_one(sde_model):
    adapter = SB3PolicyAdapter(sde_model)
    sde_model.observation_space.seed(0)
    obs = np.repeat(sde_model.observation_space.sample()[None], 8, axis=0)
    start, running = np.ones(8, dtype=bool), np.zeros(8, dtype=bool)
    a0, _ = adapter.predict(obs, episode_start=start)
    # one observation, 8 episodes, 8 draws (clipping to [-1, 1] may merge a few)
    assert len(np.unique(a0.round(6), axis=0)) >= 4
    a1, _ = adapter.predict(obs, episode_start=running)
    np.testing.assert_allclose(a1, a0)  # gSDE: the same state and draw give the same action
    a2, _ = adapter.predict(obs, episode_start=np.arange(8) < 4)
    np.testing.assert_allclose(a2[4:], a0[4:])
    assert not np.allclose(a2[:4], a0[:4])


def test_models_without_gsde_are_left_alone():
    model = _ppo(False)
    resample_sde_noise(model, 4, np.ones(4, dtype=bool))  # no error, nothing to draw
    assert not hasattr(model.policy.action_dist, "exploration_matrices")


def test_stochastic_evaluation_of_a_gsde_agent_runs_its_episodes(sde_model):
    from rndx.evaluate import evaluate_policy_episodes

    result = evaluate_policy_episodes(
        sde_model, "rndx/AGVWarehouse-v0", 6, 0, 20, {}, deterministic=False
    )
    assert result["episodes"] == 6
    # a draw of its own for each of the 6 eval envs, not the matrices of another batch
    mats = sde_model.policy.action_dist.exploration_matrices
    assert mats.shape[0] == 6 and len({tuple(m.flatten().tolist()) for m in mats}) == 6


def test_monitor_rollouts_give_every_episode_of_a_batch_its_own_draw(sde_model):
    from rndx.monitors.rollouts import run_rollouts

    rolls = run_rollouts(sde_model, "rndx/AGVWarehouse-v0", 5, seed=0, max_episode_steps=10)
    assert len(rolls) == 5
    mats = sde_model.policy.action_dist.exploration_matrices
    assert mats.shape[0] == 5
    assert len({tuple(m.flatten().tolist()) for m in mats}) == 5
