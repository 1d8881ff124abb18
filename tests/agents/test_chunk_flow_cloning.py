"""Behaviour cloning with the chunk policy, on synthetic demos whose answer is known: the
cloned policy reproduces an observation-dependent expert, the loss is the documented mean
squared error, and training logs what it says it logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rndx.agents.chunk_flow import ChunkFlowPolicy, behaviour_clone, from_demos
from rndx.demos import Demos

OBS = spaces.Box(-20.0, 20.0, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
TINY = {"encoder_hidden": [64], "velocity_hidden": [64, 64]}


def _expert(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations far from standardised (offsets 10 and -7, scales 4 and 0.5, a constant
    feature) and actions that depend on both varying features, the first one not linearly
    (the second action is constant).
    Sorted by the first feature, as steps of a trajectory are ordered in a demos file."""
    u = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 2))
    u = u[np.argsort(u[:, 0])]
    obs = np.column_stack([10 + 4 * u[:, 0], -7 + 0.5 * u[:, 1], np.full(n, 2.0)])
    act = np.column_stack([0.6 * np.abs(u[:, 0]) - 0.3 + 0.2 * u[:, 1], np.full(n, -0.4)])
    return obs.astype(np.float32), act.astype(np.float32)


def _demos(obs: np.ndarray, act: np.ndarray) -> Demos:
    """Every step an episode of its own: each target chunk repeats the step's action."""
    n = len(obs)
    return Demos(obs, act, np.arange(n), np.ones(n, bool), "synthetic", {}, None)


@pytest.fixture(scope="module")
def cloned() -> ChunkFlowPolicy:
    demos = _demos(*_expert(512, seed=0))
    policy = from_demos(demos, OBS, ACT, seed=0, horizon=2, execute=1, flow_steps=4, **TINY)
    behaviour_clone(policy, demos, steps=300, batch_size=128, learning_rate=3e-3, log_every=100)
    return policy


def test_the_cloned_policy_reproduces_the_expert_on_new_observations(
    cloned: ChunkFlowPolicy,
) -> None:
    """Held-out observations: the zero-noise chunk is the expert's action (to a few
    hundredths, where predicting the mean action is off by 0.13), and so are noisy samples
    (the target is deterministic) and the receding-horizon actions."""
    obs, want = _expert(200, seed=1)
    chunks = cloned.sample_chunks(obs, 1, deterministic=True)[:, 0]  # (200, H=2, 2)
    err = np.abs(chunks - want[:, None, :]).mean(axis=(0, 1))
    spread = np.abs(want[:, 0] - want[:, 0].mean()).mean()
    assert spread > 0.1
    assert err[0] < 0.25 * spread, (err, spread)
    assert err[1] < 0.01, err  # the constant action (std 0: the floor keeps it finite)
    noisy = cloned.sample_chunks(obs, 4, seed=0)
    assert np.abs(noisy - want[:, None, None, :]).mean(axis=(0, 1, 2))[0] < 0.25 * spread
    cloned.reset()
    acted, _ = cloned.predict(obs, deterministic=True)
    np.testing.assert_allclose(acted, chunks[:, 0], atol=1e-5)


def test_normalisation_statistics_are_the_demos_mean_and_std() -> None:
    obs, act = _expert(64, seed=2)
    policy = from_demos(_demos(obs, act), OBS, ACT, **TINY)
    np.testing.assert_allclose(policy.obs_mean.numpy(), obs.mean(0), rtol=1e-5)
    # the constant observation feature and action get the 0.01 floor, not 0
    np.testing.assert_allclose(policy.obs_std.numpy(), [*obs.std(0)[:2], 0.01], rtol=1e-5)
    np.testing.assert_allclose(policy.action_mean.numpy(), act.mean(0), rtol=1e-5)
    np.testing.assert_allclose(policy.action_std.numpy(), [act.std(0)[0], 0.01], rtol=1e-5)


def test_bc_loss_is_the_mean_squared_error_against_the_normalised_target() -> None:
    """With the velocity net's last layer zeroed (v = 0) the loss is
    mean((a1 - a0)^2) over batch and chunk entries, a1 the normalised expert chunk and a0
    the generator's first normal draw."""
    policy = ChunkFlowPolicy(
        OBS,
        ACT,
        horizon=3,
        execute=1,
        obs_mean=np.array([1.0, 2.0, 3.0]),
        obs_std=np.array([2.0, 2.0, 2.0]),
        action_mean=np.array([0.5, -0.25]),
        action_std=np.array([0.25, 0.5]),
        **TINY,
    )
    last = policy.net.trunk[-1][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    obs = torch.zeros((5, 3))
    chunks = torch.tensor([[0.75, 0.25]]).repeat(5, 3, 1)  # normalised: (1, 1) everywhere
    loss = policy.bc_loss(obs, chunks, torch.Generator().manual_seed(7))
    a0 = torch.randn((5, 6), generator=torch.Generator().manual_seed(7))
    assert loss.item() == pytest.approx(((1.0 - a0) ** 2).mean().item(), rel=1e-6)


def test_training_logs_the_mean_of_each_window_and_decays_the_rate_to_zero(
    tmp_path: Path,
) -> None:
    """7 steps logged every 3: three means (the last over the one step left); TensorBoard
    gets the same values at the step counts, and the learning rate ends at 0."""
    from rndx.report import read_scalars

    demos = _demos(*_expert(32, seed=3))

    def run(log_every: int, tb_dir: Path | None = None) -> list[float]:
        policy = from_demos(demos, OBS, ACT, seed=0, horizon=2, execute=1, **TINY)
        return behaviour_clone(
            policy, demos, steps=7, batch_size=8, log_every=log_every, tb_dir=tb_dir, seed=1
        )

    per_step = run(1)
    assert len(per_step) == 7
    logged = run(3, tmp_path / "tb")
    want = [np.mean(per_step[0:3]), np.mean(per_step[3:6]), per_step[6]]
    np.testing.assert_allclose(logged, want, rtol=1e-6)
    scalars = read_scalars(tmp_path, ["train/bc_loss", "train/learning_rate"])
    steps, values = scalars["train/bc_loss"]
    assert steps.tolist() == [3, 6, 7]
    np.testing.assert_allclose(values, want, rtol=1e-6)
    steps, rates = scalars["train/learning_rate"]
    assert steps.tolist() == [3, 6, 7] and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert 0.0 < rates[0] < 1e-3


def test_bc_loss_asks_the_velocity_at_the_straight_line_from_noise_to_the_expert() -> None:
    """x_t = (1 - t) a0 + t a1 at the t drawn after a0 (rectified flow: t = 0 is the noise,
    t = 1 the normalised expert chunk)."""
    policy = ChunkFlowPolicy(
        OBS, ACT, horizon=2, execute=1, action_mean=np.array([0.5, -0.25]), **TINY
    )
    seen = {}
    velocity = policy.net.velocity

    def spy(x, t, e_term):
        seen.update(x=x.detach().clone(), t=t.detach().clone())
        return velocity(x, t, e_term)

    policy.net.velocity = spy  # type: ignore[method-assign]
    chunks = torch.tensor([[1.0, 0.75], [0.0, 0.25]]).repeat(4, 1, 1)  # (4, H=2, 2)
    policy.bc_loss(torch.zeros((4, 3)), chunks, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    a0 = torch.randn((4, 4), generator=gen)
    t = torch.rand(4, generator=gen)
    a1 = (chunks - torch.tensor([0.5, -0.25])).reshape(4, 4)  # action std 1
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["x"], (1 - t[:, None]) * a0 + t[:, None] * a1)
