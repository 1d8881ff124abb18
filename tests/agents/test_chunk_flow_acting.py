"""The chunk policy acting: a batch samples each observation's own chunks, a caller's
generator is used, ``predict`` executes a chunk's actions in order and ``reset`` makes envs
replan, and a checkpoint keeps the normalisation and the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from gymnasium import spaces

from rndx.agents.chunk_flow import ChunkFlowPolicy

OBS = spaces.Box(-1.0, 1.0, (5,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = {"encoder_hidden": [32], "velocity_hidden": [32, 32]}


def _policy(**kwargs) -> ChunkFlowPolicy:
    return ChunkFlowPolicy(OBS, ACT, **{**SMALL, **kwargs})


def _observations(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1.0, 1.0, (n, 5)).astype(np.float32)


def test_a_batch_samples_the_chunks_of_each_observation() -> None:
    policy = _policy(horizon=4, execute=2)
    obs = _observations(3)
    batch = policy.sample_chunks(obs, 2, deterministic=True)
    for i in range(3):
        np.testing.assert_allclose(
            batch[i], policy.sample_chunks(obs[i], 2, deterministic=True), atol=1e-6
        )
    assert not np.allclose(batch[0], batch[1])
    np.testing.assert_allclose(policy.embed(obs)[1], policy.embed(obs[1]), atol=1e-6)


def test_a_given_generator_draws_the_noise() -> None:
    policy = _policy()
    obs = _observations(1)[0]
    a = policy.sample_chunks(obs, 3, generator=torch.Generator().manual_seed(5))
    b = policy.sample_chunks(obs, 3, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, policy.sample_chunks(obs, 3, seed=5))
    # the policy's own generator was left alone: its first draw is a fresh policy's
    np.testing.assert_array_equal(policy.sample_chunks(obs, 3), _policy().sample_chunks(obs, 3))


def test_predict_executes_the_chunk_in_order_then_replans() -> None:
    policy = _policy(horizon=5, execute=3)
    obs, later = _observations(4).reshape(2, 2, 5)
    chunks = policy.sample_chunks(obs, 1, deterministic=True)[:, 0]  # (2, 5, 2)
    acted = [policy.predict(obs, deterministic=True)[0] for _ in range(3)]
    for t in range(3):
        np.testing.assert_allclose(acted[t], chunks[:, t], atol=1e-6)
    # k = 3 actions done: replanned on the observation of now
    replanned = policy.sample_chunks(later, 1, deterministic=True)[:, 0, 0]
    np.testing.assert_allclose(policy.predict(later, deterministic=True)[0], replanned, atol=1e-6)


def test_reset_of_some_envs_replans_only_those() -> None:
    policy = _policy(horizon=5, execute=3)
    obs, later = _observations(4).reshape(2, 2, 5)
    chunks = policy.sample_chunks(obs, 1, deterministic=True)[:, 0]
    fresh = policy.sample_chunks(later, 1, deterministic=True)[:, 0]
    policy.predict(obs, deterministic=True)
    policy.reset([1])
    acted, _ = policy.predict(later, deterministic=True)
    np.testing.assert_allclose(acted[0], chunks[0, 1], atol=1e-6)  # env 0 goes on
    np.testing.assert_allclose(acted[1], fresh[1, 0], atol=1e-6)  # env 1 replanned
    policy.reset()
    acted, _ = policy.predict(obs, deterministic=True)
    np.testing.assert_allclose(acted, chunks[:, 0], atol=1e-6)  # all replanned


def test_a_checkpoint_keeps_normalisation_seed_and_sizes(tmp_path: Path) -> None:
    policy = _policy(
        horizon=3,
        execute=2,
        embedding_dim=12,
        seed=3,
        obs_mean=np.linspace(-0.5, 0.5, 5),
        obs_std=np.linspace(0.2, 1.0, 5),
        action_mean=np.array([0.1, -0.2]),
        action_std=np.array([0.3, 0.05]),
    )
    loaded = ChunkFlowPolicy.load(policy.save(tmp_path / "model.zip"))
    assert (loaded.seed, loaded.embedding_dim) == (3, 12)
    for name in ("obs_mean", "obs_std", "action_mean", "action_std"):
        np.testing.assert_allclose(getattr(loaded, name), getattr(policy, name), err_msg=name)
    obs = _observations(4)
    np.testing.assert_allclose(loaded.embed(obs), policy.embed(obs), atol=1e-6)
    # the policy's own generator is seeded the same: unseeded draws agree too
    np.testing.assert_allclose(
        loaded.sample_chunks(obs, 2), policy.sample_chunks(obs, 2), atol=1e-6
    )


def test_sampling_takes_euler_steps_from_t_0_in_equal_steps() -> None:
    """flow_steps=4: the velocity is evaluated at t = 0, 1/4, 1/2, 3/4 (Euler from 0 to 1)."""
    policy = _policy(flow_steps=4)
    seen: list[torch.Tensor] = []
    embed = policy.net.time_embedding

    def spy(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return embed(t)

    policy.net.time_embedding = spy  # type: ignore[method-assign]
    policy.sample_chunks(_observations(1)[0], 2, deterministic=True)
    np.testing.assert_allclose(torch.cat(seen).numpy(), [0.0, 0.25, 0.5, 0.75])
