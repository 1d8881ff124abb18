"""Intrinsic reward modules: targets, predictors, RDD's count-like decay, normalisers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rndx.intrinsic import (
    RDD,
    RND,
    CoefSchedule,
    InputSelector,
    IntrinsicRewardNormalizer,
    RunningMeanStd,
    build_intrinsic,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("cls", [RND, RDD])
def test_target_never_changes_and_predictor_loss_falls_on_a_repeated_state(cls) -> None:
    m = cls(6, learning_rate=1e-3)
    m.update_input_stats(np.random.default_rng(0).normal(size=(500, 6)))
    target = {k: v.clone() for k, v in m.target.state_dict().items()}
    batch = np.random.default_rng(1).normal(size=(32, 6)).astype(np.float32)
    first = m.update(batch)["predictor_loss"]
    for _ in range(300):
        last = m.update(batch)["predictor_loss"]
    for k, v in m.target.state_dict().items():
        assert torch.equal(v, target[k]), k
    assert all(not p.requires_grad for p in m.target.parameters())
    if cls is RND:
        assert last < 0.05 * first
        assert m.compute(batch).mean() < 0.05 * first
    else:  # RDD's loss has a floor: the target is noisy (d * sigma^2 in expectation)
        assert m.compute(batch).mean() < 0.2 * m.compute(batch * 0 + 3.0).mean()


def test_rnd_bonus_is_squared_error_on_normalised_input() -> None:
    m = RND(3)
    x = np.array([[1.0, -2.0, 0.5]], np.float32)
    xn = m.obs_rms.normalize(torch.as_tensor(x), 5.0)
    expected = ((m.predictor(xn) - m.target(xn)) ** 2).sum().item()
    assert m.compute(x)[0] == pytest.approx(expected, rel=1e-5)


def test_rdd_bonus_decays_like_a_pseudo_count_while_a_fresh_state_stays_high() -> None:
    m = RDD(4, learning_rate=3e-4, sigma=1.0)
    m.update_input_stats(np.random.default_rng(0).normal(size=(1000, 4)))
    s = np.array([[0.3, -0.2, 0.5, 0.1]], np.float32)
    fresh = np.array([[-2.0, 1.5, -1.0, 2.0]], np.float32)
    bonus, n = {}, 0
    for visits in (10, 100, 1000, 3000):
        while n < visits:
            m.update(s)
            n += 1
        bonus[visits] = float(m.compute(s)[0])
    assert bonus[10] > bonus[100] > bonus[1000] > bonus[3000]
    slope = np.log(bonus[3000] / bonus[100]) / np.log(30.0)
    assert -1.5 < slope < -0.4, slope  # roughly 1/n (slope -1), not flat, not collapsing
    assert m.compute(fresh)[0] > 50 * bonus[3000]


def test_rdd_bonus_is_against_the_mean_not_the_sample() -> None:
    m = RDD(3, sigma=5.0)
    x = torch.randn(8, 3)
    b1, b2 = m._bonus(x), m._bonus(x)
    assert torch.equal(b1, b2)  # deterministic: no sampling in the bonus
    # exactly (1/d) ||f(s) - mu(s)||^2 with mu the frozen target network's output
    with torch.no_grad():
        f, mu = m._net(m.predictor, x), m._net(m.target, x)
    torch.testing.assert_close(b1, ((f - mu) ** 2).sum(1) / m.output_dim)
    assert float(b1.min().detach()) > 0
    l1, l2 = m._loss(x, m._target(x)), m._loss(x, m._target(x))
    assert not torch.equal(l1, l2)  # the regression target is resampled on every visit
    # ... from N(mu, sigma^2): E||f - (mu + sigma eps)||^2 = ||f - mu||^2 + d sigma^2
    with torch.no_grad():
        mean_loss = torch.stack([m._loss(x, mu) for _ in range(4000)]).mean(0)
    expected = ((f - mu) ** 2).sum(1) + m.output_dim * m.sigma**2
    torch.testing.assert_close(mean_loss, expected, rtol=0.02, atol=0.0)


def test_rdd_uses_the_papers_learning_rate_by_default() -> None:
    assert RDD(3).optimizer.param_groups[0]["lr"] == 3e-4
    assert RND(3).optimizer.param_groups[0]["lr"] == 1e-4


@pytest.mark.parametrize("cls", [RND, RDD])
def test_predictor_steps_on_the_update_proportion_share_of_the_batch(cls) -> None:
    """One step with update_proportion p equals a step with p = 1 on the samples that the
    same random draw keeps; a draw that keeps none makes no step at all."""
    batch = torch.as_tensor(np.random.default_rng(2).normal(size=(64, 5)), dtype=torch.float32)
    torch.manual_seed(3)
    part = cls(5, learning_rate=1e-2, update_proportion=0.25)
    whole = cls(5, learning_rate=1e-2)
    whole.load_state_dict(part.state_dict())
    x, target = part.training_batch(batch)
    keep = torch.rand(64, generator=torch.Generator().manual_seed(7)) < 0.25
    assert 0 < int(keep.sum()) < 64
    torch.manual_seed(11)  # RDD samples its regression target: the same draw for both
    part.update_prepared(x, target, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(11)
    whole.update_prepared(x[keep], target[keep])
    for a, b in zip(part.predictor.parameters(), whole.predictor.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # a draw that keeps nothing (a 4-sample minibatch at p = 1e-6): the predictor is unchanged
    tiny = cls(5, update_proportion=1e-6)
    before = [p.clone() for p in tiny.predictor.parameters()]
    out = tiny.update(batch[:4])
    assert np.isfinite(out["predictor_loss"])
    for a, b in zip(tiny.predictor.parameters(), before, strict=True):
        assert torch.equal(a, b)


def test_running_mean_std_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    data = [rng.normal(3.0, 2.0, size=(n, 5)) for n in (7, 100, 1, 33)]
    rms = RunningMeanStd((5,), epsilon=0.0)
    for batch in data:
        rms.update(batch)
    allx = np.concatenate(data)
    np.testing.assert_allclose(rms.mean.numpy(), allx.mean(0), rtol=1e-10)
    np.testing.assert_allclose(rms.var.numpy(), allx.var(0), rtol=1e-10)
    assert float(rms.count) == len(allx)


def test_windowed_running_mean_std_follows_recent_batches() -> None:
    """window=None keeps all history; a window forgets old batches, and a window no larger
    than a batch gives exactly that batch's statistics."""
    rng = np.random.default_rng(0)
    old = [rng.normal(0.0, 1.0, size=100) for _ in range(50)]
    new = [rng.normal(10.0, 2.0, size=100) for _ in range(50)]
    full, windowed, last = RunningMeanStd(), RunningMeanStd(window=1000), RunningMeanStd(window=100)
    for batch in old + new:
        for rms in (full, windowed, last):
            rms.update(batch)
    assert float(full.mean) == pytest.approx(5.0, abs=0.1)
    assert full.std == pytest.approx(np.concatenate(old + new).std(), rel=1e-3)
    assert float(windowed.mean) == pytest.approx(10.0, abs=0.2)
    assert windowed.std == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(float(last.mean), new[-1].mean(), rtol=1e-2)
    np.testing.assert_allclose(last.std, new[-1].std(), rtol=1e-2)
    with pytest.raises(ValueError, match="window=0"):
        RunningMeanStd(window=0)


def test_reward_normaliser_window_keeps_late_small_bonuses_visible() -> None:
    """Bonuses that fall 100x over a run: with all history the late ones are scaled by the
    early returns' spread and nearly vanish; a window rescales them to the recent spread."""
    rng = np.random.default_rng(0)
    full, windowed = IntrinsicRewardNormalizer(0.9), IntrinsicRewardNormalizer(0.9, window=64)
    for scale in np.geomspace(10.0, 0.1, 40):
        rewards = scale * rng.uniform(0.5, 1.5, size=(16, 4))
        out_full, out_win = full(rewards), windowed(rewards)
    assert out_win.mean() > 20 * out_full.mean()
    assert 0.1 < out_win.mean() < 10.0


def test_input_normalisation_is_clipped_to_five() -> None:
    m = RND(2)
    m.update_input_stats(np.random.default_rng(0).normal(size=(1000, 2)))
    x = m._prepare(np.array([[100.0, -100.0]], np.float32))
    assert x.tolist() == [[5.0, -5.0]]


def test_reward_normaliser_accumulates_over_time_per_env() -> None:
    """ret[e] <- gamma ret[e] + r[t, e] over t, per env (not across envs: CleanRL #360)."""
    gamma = 0.9
    rewards = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # (T=3, envs=2)
    norm = IntrinsicRewardNormalizer(gamma)
    out = norm(rewards)
    ret = np.zeros(2)
    returns = []
    for t in range(3):
        ret = gamma * ret + rewards[t]
        returns.append(ret.copy())
    returns = np.array(returns).reshape(-1)
    expected_std = np.sqrt(np.var(returns) * 6 / (6 + 1e-4) + 1e-8)
    # the statistics started from the epsilon prior: compare with the same update by hand
    rms = RunningMeanStd(())
    rms.update(returns)
    np.testing.assert_allclose(out, rewards / rms.std, rtol=1e-10)
    assert rms.std == pytest.approx(expected_std, rel=1e-3)
    np.testing.assert_allclose(norm.ret.numpy(), ret)  # carried over to the next rollout
    # the buggy variant (accumulating across envs) gives a different scale
    wrong = RunningMeanStd(())
    ret_w = np.zeros(3)
    wrong_returns = []
    for e in range(2):
        ret_w = gamma * ret_w + rewards[:, e]
        wrong_returns.append(ret_w.copy())
    wrong.update(np.array(wrong_returns).reshape(-1))
    assert wrong.std != pytest.approx(rms.std, rel=1e-3)
    assert not np.allclose(out, rewards / wrong.std, rtol=1e-3)  # the module is not the bug


def test_state_dict_round_trip_restores_statistics() -> None:
    m = RND(3)
    m.update_input_stats(np.random.default_rng(0).normal(size=(50, 3)))
    m.normalize_rewards(np.ones((4, 6)))
    m2 = RND(3)
    m2.load_state_dict(m.state_dict())
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(m.compute(x), m2.compute(x))
    assert torch.equal(m2.reward_normalizer.ret, m.reward_normalizer.ret)


def test_input_selector() -> None:
    obs = np.arange(12, dtype=np.float32).reshape(2, 6)
    infos = [{"pose": np.array([1, 2, 3, 4])}, {"pose": np.array([5, 6, 7, 8])}]
    assert InputSelector("obs")(obs).shape == (2, 6)
    assert InputSelector([0, 5])(obs).tolist() == [[0, 5], [6, 11]]
    assert InputSelector("pose")(obs, infos).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert InputSelector("pose").dim(6) == 4
    with pytest.raises(ValueError, match="allowed"):
        InputSelector("lidar")
    with pytest.raises(ValueError, match="out of range"):
        InputSelector([9]).dim(6)
    with pytest.raises(KeyError, match="pose"):
        InputSelector("pose")(obs, [{}, {}])
    # an n-D observation is flattened; indices count in the flat vector
    obs_2d = obs.reshape(2, 2, 3)
    np.testing.assert_array_equal(InputSelector("obs")(obs_2d), obs)
    assert InputSelector([0, 5])(obs_2d).tolist() == [[0, 5], [6, 11]]


def test_pose_tiles_are_one_hot_per_shifted_grid() -> None:
    sel = InputSelector("pose_tiles", extent=(4.0, 2.0), tile_size=1.0, tilings=2)
    # grid 0: cells floor(x) for x in [0, 4] -> 5 x 3; grid 1 shifted by 0.5 m -> 5 x 3
    assert sel.dim(37) == 15 + 15
    poses = np.array([[0.2, 0.2, 1, 0], [0.7, 1.6, 0, 1], [-0.1, 9.0, 1, 0]], np.float32)
    x = sel.from_poses(poses)
    assert x.shape == (3, 30) and (x.sum(axis=1) == 2).all() and set(np.unique(x)) == {0, 1}
    # (0.2, 0.2): cell (0, 0) of grid 0 and of grid 1; (0.7, 1.6): (0, 1) and (1, 2)
    assert np.flatnonzero(x[0]).tolist() == [0, 15]
    assert np.flatnonzero(x[1]).tolist() == [0 * 3 + 1, 15 + 1 * 3 + 2]
    # a pose off the floor (a collision can end just outside) falls in the edge cells
    assert np.flatnonzero(x[2]).tolist() == [0 * 3 + 2, 15 + 0 * 3 + 2]
    # the heading plays no part, and __call__ reads the pose from info like "pose"
    infos = [{"pose": p} for p in poses]
    np.testing.assert_array_equal(sel(np.zeros((3, 37)), infos), x)
    assert sel.uses_pose and InputSelector("pose").uses_pose and not InputSelector("obs").uses_pose
    with pytest.raises(ValueError, match="extent"):
        InputSelector("pose_tiles")
    with pytest.raises(ValueError, match="tile_size"):
        InputSelector("pose_tiles", extent=(4, 2), tile_size=0)


@pytest.mark.parametrize("cls", [RND, RDD])
def test_binary_input_path_equals_the_dense_one(cls) -> None:
    """binary_active gathers the active weight columns instead of a dense first layer: the
    same bonus, target, loss and update as the dense path on the same networks."""
    sel = InputSelector("pose_tiles", extent=(6.0, 3.0), tilings=2)
    rng = np.random.default_rng(0)
    poses = np.column_stack(
        [rng.uniform(0, 6, 256), rng.uniform(0, 3, 256), np.ones(256), np.zeros(256)]
    )
    x = sel.from_poses(poses)
    torch.manual_seed(0)
    dense = cls(x.shape[1], hidden=32, output_dim=16)
    torch.manual_seed(0)
    sparse = cls(x.shape[1], hidden=32, output_dim=16, binary_active=2)
    for m in (dense, sparse):
        m.update_input_stats(x[:100])  # some features never seen: whitened values clip at 5
    np.testing.assert_allclose(sparse.compute(x), dense.compute(x), rtol=1e-4, atol=1e-6)
    (xd, td), (xs, ts) = dense.training_batch(x), sparse.training_batch(x)
    assert xs.dtype == torch.long and xs.shape == (256, 2)
    torch.testing.assert_close(ts, td, rtol=1e-4, atol=1e-6)
    for _ in range(3):
        torch.manual_seed(1)  # RDD draws its target samples
        ld = dense.update_prepared(xd, td)["predictor_loss"]
        torch.manual_seed(1)
        ls = sparse.update_prepared(xs, ts)["predictor_loss"]
        assert ls == pytest.approx(ld, rel=1e-4)
    np.testing.assert_allclose(sparse.compute(x), dense.compute(x), rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="exactly 2 ones"):
        sparse.compute(np.full((1, x.shape[1]), 0.5, np.float32))
    uneven = x[:2].copy()  # 3 ones and 1 one: the right total, the wrong rows
    uneven[0, np.flatnonzero(uneven[0] == 0)[0]] = 1.0
    uneven[1, np.flatnonzero(uneven[1])[0]] = 0.0
    assert uneven.sum() == 4
    with pytest.raises(ValueError, match="exactly 2 ones"):
        sparse.compute(uneven)


def _unvisited_over_visited_bonus(selector: InputSelector, seed: int = 0) -> float:
    """Train an RND on poses in two 1 m aisles (y in [0, 1] and [3, 4]) of a 20 x 4 m floor;
    return the mean bonus on the never-visited aisle between them (y in [1.5, 2.5]) over the
    mean bonus on the visited ones. The unvisited aisle lies inside the range the input
    normalisation has seen, as unvisited floor next to visited floor does in a warehouse."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    def poses(y_lo: float, n: int) -> np.ndarray:
        xy = np.column_stack([rng.uniform(0, 20, n), rng.uniform(y_lo, y_lo + 1, n)])
        a = rng.uniform(0, 2 * np.pi, n)
        return np.column_stack([xy, np.cos(a), np.sin(a)]).astype(np.float32)

    seen = selector.from_poses(np.concatenate([poses(0.0, 2048), poses(3.0, 2048)]))
    m = RND(seen.shape[1], hidden=64, output_dim=64, target_layers=2, learning_rate=1e-3)
    m.update_input_stats(seen)
    for _ in range(400):
        m.update(seen[rng.integers(0, len(seen), 256)])
    unseen = selector.from_poses(poses(1.5, 1024))
    return float(m.compute(unseen).mean() / m.compute(seen).mean())


def test_rnd_novelty_on_pose_tiles_stays_local() -> None:
    # On the raw pose the predictor interpolates into the unvisited aisle, whose bonus falls
    # with the visited ones'; on tiles it keeps a bonus many times theirs (README,
    # exploration on the hard layout).
    tiles = _unvisited_over_visited_bonus(InputSelector("pose_tiles", extent=(20.0, 4.0)))
    raw = _unvisited_over_visited_bonus(InputSelector("pose"))
    assert tiles > 5.0 and tiles > 2 * raw, (tiles, raw)  # measured 6.5-7.7 vs 2.3-2.6


def test_coefficient_schedule_and_factory() -> None:
    assert CoefSchedule("constant", 0.5)(0.7) == 0.5
    lin = CoefSchedule("linear", 1.0, 0.0)
    assert (lin(0.0), lin(0.5), lin(1.0)) == (1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="allowed"):
        CoefSchedule("cosine")
    assert isinstance(build_intrinsic("rdd", 3), RDD)
    with pytest.raises(ValueError, match="allowed"):
        build_intrinsic("icm", 3)


def _chan_std(batches) -> float:
    """RunningMeanStd's result by hand: epsilon prior (count 1e-4, mean 0, var 1) plus each
    batch folded in with Chan et al.'s update."""
    mean, var, count = 0.0, 1.0, 1e-4
    for b in batches:
        b = np.asarray(b, np.float64).reshape(-1)
        bm, bv, n = b.mean(), b.var(), len(b)
        delta, total = bm - mean, count + n
        var = (var * count + bv * n + delta**2 * count * n / total) / total
        mean, count = mean + delta * n / total, total
    return float(np.sqrt(var + 1e-8))


def test_reward_normaliser_carries_each_envs_return_into_the_next_rollout() -> None:
    """Two calls are one stream: ret continues where the last rollout left it (non-episodic),
    and the std covers every return so far."""
    gamma, rng = 0.9, np.random.default_rng(3)
    r1, r2 = rng.uniform(0, 2, (5, 3)), rng.uniform(0, 2, (4, 3))
    norm = IntrinsicRewardNormalizer(gamma)
    out1, out2 = norm(r1), norm(r2)
    ret, returns = np.zeros(3), []
    for r in (*r1, *r2):
        ret = gamma * ret + r
        returns.append(ret.copy())
    returns = np.array(returns)
    np.testing.assert_allclose(norm.ret.numpy(), ret, rtol=1e-12)
    np.testing.assert_allclose(out1, r1 / _chan_std([returns[:5]]), rtol=1e-10)
    np.testing.assert_allclose(out2, r2 / _chan_std([returns[:5], returns[5:]]), rtol=1e-10)


@pytest.mark.parametrize("kind", ["rnd", "rdd"])
def test_predictor_is_one_layer_deeper_and_initialised_as_rnd(kind: str) -> None:
    """RND's asymmetry (the predictor one hidden layer deeper than the target) and its
    orthogonal init: hidden layers gain sqrt(2), zero biases."""
    module = build_intrinsic(kind, 6, hidden=32, target_layers=2)

    def linears(net):
        return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]

    target, predictor = linears(module.target), linears(module.predictor)
    assert len(predictor) == len(target) + 1 == 4
    for net in (target, predictor):
        for lin in net[:-1]:  # hidden: all singular values = the gain (orthogonal x gain)
            s = torch.linalg.svdvals(lin.weight.detach())
            np.testing.assert_allclose(s.numpy(), np.sqrt(2), rtol=1e-5)
            assert torch.count_nonzero(lin.bias) == 0
        s = torch.linalg.svdvals(net[-1].weight.detach())
        assert not np.allclose(s.numpy(), np.sqrt(2), rtol=1e-3)  # the output layer's own gain
