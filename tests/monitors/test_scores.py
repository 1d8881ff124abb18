"""RND-OE, ACE and window sums (rndx.monitors.scores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rndx.monitors.scores import RNDOE, ace, cell_widths, window_sums


def test_ace_of_a_point_mass_is_zero():
    chunks = np.full((64, 16, 2), 0.3)
    assert ace(chunks, np.array([0.06, 0.06])) == 0.0


def test_ace_hand_computed_two_equal_cells():
    # 4 samples, two per cell in dim 0 (width 0.1), dim 1 constant: entropy ln 2 at every step
    chunks = np.zeros((4, 3, 2))
    chunks[:2, :, 0] = 0.0
    chunks[2:, :, 0] = 0.55
    assert ace(chunks, np.array([0.1, 0.1])) == pytest.approx(np.log(2.0))


def test_ace_grows_with_the_spread():
    rng = np.random.default_rng(0)
    widths = np.array([0.06, 0.06])
    values = [ace(rng.normal(0.0, s, (64, 16, 2)), widths) for s in (0.01, 0.05, 0.2, 0.6)]
    assert values[0] < values[1] < values[2] < values[3]
    assert values[3] <= np.log(64) + 1e-9  # at most every sample in its own cell


def test_ace_batched_matches_single_and_respects_dims():
    rng = np.random.default_rng(1)
    chunks = rng.normal(0.0, 0.3, (5, 32, 4, 2))
    widths = np.array([0.05, 0.05])
    batch = ace(chunks, widths)
    assert batch.shape == (5,)
    np.testing.assert_allclose(batch, [ace(c, widths) for c in chunks])
    only0 = ace(chunks, widths[:1], dims=[0])
    assert np.all(only0 <= batch + 1e-12)  # the joint histogram has at least as many cells


def test_ace_non_finite_sample_scores_inf_and_bad_widths_raise():
    chunks = np.zeros((2, 8, 4, 2))
    chunks[1, 0, 0, 0] = np.nan
    out = ace(chunks, np.array([0.1, 0.1]))
    assert out[0] == 0.0 and np.isinf(out[1])
    with pytest.raises(ValueError, match="cell widths"):
        ace(chunks, np.array([0.1]))


def test_cell_widths_are_a_factor_of_the_calibration_range():
    a = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(cell_widths(a, 0.03), [0.06, 0.03])  # constant dim: width factor
    with pytest.raises(ValueError, match="factor"):
        cell_widths(a, 0.0)


def test_window_sums_against_a_loop():
    rng = np.random.default_rng(2)
    s = rng.random((3, 20))
    for w in (1, 4, 25):
        ref = np.stack(
            [[s[i, max(0, t - w + 1) : t + 1].sum() for t in range(20)] for i in range(3)]
        )
        np.testing.assert_allclose(window_sums(s, w), ref)
    with pytest.raises(ValueError, match="window"):
        window_sums(s, 0)


def test_window_sums_keep_inf_inside_the_window_only():
    s = np.array([1.0, np.inf, 1.0, 1.0, 1.0])
    out = window_sums(s, 2)
    assert np.isinf(out[1]) and np.isinf(out[2])
    np.testing.assert_allclose(out[[0, 3, 4]], [1.0, 2.0, 2.0])


def test_rnd_oe_scores_shifted_embeddings_higher():
    rng = np.random.default_rng(3)
    train = rng.normal(0.0, 1.0, (2000, 8))
    rnd = RNDOE(8, hidden=64, output_dim=16, seed=0)
    assert len(rnd.predictor) > len(rnd.target)  # the predictor is deeper
    losses = rnd.fit(train, epochs=30, seed=0)
    assert losses[-1] < losses[0]
    fresh = rnd.score(rng.normal(0.0, 1.0, (500, 8)))
    shifted = rnd.score(rng.normal(3.0, 1.0, (500, 8)))
    assert np.median(shifted) > 2.0 * np.median(fresh)
    nan = rnd.score(np.full((1, 8), np.nan))
    assert np.isinf(nan[0])


def test_rnd_oe_rejects_bad_embeddings():
    rnd = RNDOE(4)
    with pytest.raises(ValueError, match="expected"):
        rnd.fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="NaN"):
        rnd.fit(np.full((10, 4), np.nan))


def test_rnd_oe_score_is_the_l2_error_on_whitened_embeddings():
    """score(e) = || f((e - mean) / std) - g((e - mean) / std) ||_2 with the fitting set's
    per-dimension mean and std (embeddings far from unit scale, so whitening matters)."""
    rng = np.random.default_rng(6)
    fit = rng.normal([3.0, -2.0, 0.0, 10.0], [5.0, 0.5, 2.0, 0.1], (400, 4)).astype(np.float32)
    rnd = RNDOE(4, hidden=16, output_dim=8, seed=0)
    rnd.fit(fit, epochs=3, seed=0)
    mean, std = fit.mean(0), fit.std(0, ddof=1)
    np.testing.assert_allclose(rnd.mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(rnd.std.numpy(), std, rtol=1e-4)
    e = rng.normal(0.0, 3.0, (7, 4)).astype(np.float32)
    x = torch.as_tensor((e - mean) / std)
    with torch.no_grad():
        want = torch.linalg.vector_norm(rnd.predictor(x) - rnd.target(x), dim=1).numpy()
    np.testing.assert_allclose(rnd.score(e), want, rtol=1e-4)
