"""The monitored policy, its wrapper, persistence and the policy adapters."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import rndx
from rndx.monitors import (
    Monitor,
    MonitorConfig,
    MonitoredPolicy,
    MonitorWrapper,
    as_monitorable,
    calibrate,
    load_monitor,
    score_traces,
)
from rndx.monitors.scores import window_sums
from rndx.viz.strip import REQUIRED_KEYS
from tests.monitors import tiny_chunk_policy

CONTRACT_KEYS = set(REQUIRED_KEYS)  # what the video strip (and users) read per step


class ToyPolicy:
    """embed = obs; chunk samples spread with |obs[0]| (unsure far from 0)."""

    horizon = 4

    def __init__(self, obs_dim: int = 3, seed: int = 0) -> None:
        self.obs_dim = obs_dim
        self.rng = np.random.default_rng(seed)
        self.observation_space = spaces.Box(-10, 10, (obs_dim,), np.float32)
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)

    def embed(self, obs):
        return np.asarray(obs, np.float32).reshape(-1, self.obs_dim)

    def sample_chunks(self, obs, n_samples):
        x = self.embed(obs)
        sigma = 0.02 + 0.5 * np.abs(x[:, 0])
        a = self.rng.normal(0.0, 1.0, (len(x), n_samples, self.horizon, 2))
        return np.clip(a * sigma[:, None, None, None], -1, 1)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.zeros((len(self.embed(obs)), 2), np.float32), state

    def reset(self, idx=None):
        pass


def _traces(rng, n, scale=0.05, length=30):
    return [rng.normal(0.0, scale, (length, 3)).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def calibrated():
    rng = np.random.default_rng(0)
    policy = ToyPolicy()
    cfg = MonitorConfig(delta=0.1, window=5, n_samples=32, rnd_epochs=20)
    return policy, calibrate(policy, _traces(rng, 40), cfg)


def test_monitored_predict_gives_the_contract_dict(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    rng = np.random.default_rng(1)
    steps = []
    for t in range(8):
        action, step = mp.predict(rng.normal(0, 0.05, 3).astype(np.float32))
        assert action.shape == (1, 2) or action.shape == (2,)
        assert set(step) >= CONTRACT_KEYS and step["step"] == t
        steps.append(step)
    # windowed scores are the sums of the last w raw scores
    raw = np.array([s["rnd_oe_raw"] for s in steps])
    np.testing.assert_allclose([s["rnd_oe"] for s in steps], window_sums(raw, 5))
    assert all(isinstance(s["alarm"], bool) for s in steps)


def test_shifted_input_raises_a_latched_alarm_in_distribution_does_not(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    rng = np.random.default_rng(2)
    for _ in range(10):
        _, step = mp.predict(rng.normal(0.0, 0.05, 3).astype(np.float32))
    assert not step["alarm"]
    for _ in range(5):
        _, step = mp.predict(rng.normal(2.0, 0.05, 3).astype(np.float32))  # OOD and unsure
    assert step["alarm"] and 10 <= step["alarm_step"] <= 14
    first = step["alarm_step"]
    for _ in range(10):  # back in distribution: the alarm stays latched
        _, step = mp.predict(rng.normal(0.0, 0.05, 3).astype(np.float32))
    assert step["alarm"] and step["alarm_step"] == first
    mp.reset()
    _, step = mp.predict(np.zeros(3, np.float32))
    assert step["step"] == 0 and not step["alarm"]


def test_nan_or_out_of_range_observation_scores_out_of_distribution(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    _, step = mp.predict(np.array([np.nan, 0.0, 0.0], np.float32))
    assert np.isinf(step["rnd_oe"]) and np.isinf(step["ace"]) and step["alarm"]
    mp.reset()  # far from the calibration data, inside the space [-10, 10]: a high score
    _, step = mp.predict(np.array([9.0, -9.0, 9.0], np.float32))
    assert np.isfinite(step["rnd_oe"]) and step["rnd_oe"] > step["rnd_oe_threshold"]
    # beyond the observation space's bounds: impossible for the env, out of distribution
    # whatever the scores and the rule (an embedding can saturate there and score low)
    for rule in ("and", "ace"):
        cfg = MonitorConfig(**{**mon.config.__dict__, "rule": rule})
        m = MonitoredPolicy(
            policy, Monitor(cfg, mon.widths, mon.rnd_threshold, mon.ace_threshold, mon.rnd_oe)
        )
        _, step = m.predict(np.array([1e6, 0.0, 0.0], np.float32))
        assert np.isinf(step["rnd_oe"]) and np.isinf(step["ace"]) and step["alarm"]
        _, step = m.predict(np.array([10.0, -10.0, 0.0], np.float32), episode_start=[True])
        assert np.isfinite(step["rnd_oe"])  # on the bounds is inside


@pytest.mark.parametrize("rule", ["and", "or", "rnd_oe", "ace"])
def test_nan_observation_between_scored_steps_alarms_on_arrival(calibrated, rule):
    policy, mon = calibrated
    cfg = MonitorConfig(**{**mon.config.__dict__, "score_every": 8, "rule": rule})
    m8 = Monitor(cfg, mon.widths, mon.rnd_threshold, mon.ace_threshold, mon.rnd_oe)
    mp = MonitoredPolicy(policy, m8)
    _, step = mp.predict(np.zeros(3, np.float32), episode_start=[True])
    assert not step["alarm"] and np.isfinite(step["rnd_oe_raw"])
    for t in range(1, 8):  # held steps: nothing is scored, yet NaN is out of distribution
        action, step = mp.predict(np.full(3, np.nan, np.float32))
        assert step["alarm"] and step["alarm_step"] == 1 and step["step"] == t
        assert np.isinf(step["rnd_oe_raw"]) and np.isinf(step["rnd_oe"]) and np.isinf(step["ace"])
        np.testing.assert_array_equal(action, np.zeros((1, 2)))  # the policy's own action
    _, step = mp.predict(np.zeros(3, np.float32))  # next scored step: finite scores, latched
    assert step["step"] == 8 and np.isfinite(step["rnd_oe_raw"]) and step["alarm_step"] == 1
    # a finite observation between scored steps still holds the last scores
    mp.reset()
    mp.predict(np.zeros(3, np.float32))
    _, step = mp.predict(np.full(3, 5.0, np.float32))
    assert not step["alarm"] and np.isfinite(step["rnd_oe_raw"])


def test_bad_calibration_rollouts_are_named():
    policy, rng = ToyPolicy(), np.random.default_rng(5)
    cfg = MonitorConfig(delta=0.1, window=5, n_samples=8, rnd_epochs=2)
    for value in (np.inf, np.nan, 50.0):  # 50: beyond the space [-10, 10]
        traces = _traces(rng, 40)
        traces[3][5, 2] = value  # rollout 3 is in the half that fits RND-OE
        with pytest.raises(ValueError, match=r"calibration rollout 3, step 5: .*NaN or inf"):
            calibrate(policy, traces, cfg)
    traces = _traces(rng, 40)
    traces[4] = traces[4][:, :2]
    with pytest.raises(ValueError, match=r"rollout 4 has shape \(30, 2\); expected \(T, 3\)"):
        calibrate(policy, traces, cfg)
    with pytest.raises(ValueError, match="calibration must be a list of .*got NoneType"):
        calibrate(policy, None, cfg)


def test_non_numeric_scalar_or_empty_observations_are_named(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    for obs, message in (
        ("abc", r"observation 'abc' is not numeric; expected floats of shape \(3,\)"),
        (3.0, r"observation 3.0 is a scalar; expected floats of shape \(3,\) or \(n, 3\)"),
        (np.zeros((0, 3)), r"an empty batch of observations \(shape \(0, 3\)\)"),
    ):
        with pytest.raises(ValueError, match=message):
            mp.predict(obs)
    action, step = mp.predict(np.zeros(3).astype(object))  # numbers in an object array: fine
    assert not step["alarm"]


def test_predict_with_a_wrong_observation_shape_says_what_it_expects(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    with pytest.raises(
        ValueError, match=r"observation of shape \(5,\); expected \(3,\) or \(n, 3\)"
    ):
        mp.predict(np.zeros(5))
    with pytest.raises(ValueError, match=r"observation of shape \(2, 2, 3\)"):
        mp.predict(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="one flag per observation"):
        mp.predict(np.zeros((2, 3)), episode_start=[True, False, True])
    assert len(mp.predict(np.zeros((2, 3)), episode_start=[True, False])[1]) == 2


def test_batched_predict_and_episode_start(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    obs = np.zeros((3, 3), np.float32)
    for _ in range(3):
        _, steps = mp.predict(obs)
    assert [s["step"] for s in steps] == [2, 2, 2]
    _, steps = mp.predict(obs, episode_start=np.array([False, True, False]))
    assert [s["step"] for s in steps] == [3, 0, 3]


def test_score_every_holds_scores_between_scored_steps(calibrated):
    policy, mon = calibrated
    cfg = MonitorConfig(**{**mon.config.__dict__, "score_every": 3})
    m3 = Monitor(cfg, mon.widths, mon.rnd_threshold, mon.ace_threshold, mon.rnd_oe)
    mp = MonitoredPolicy(policy, m3)
    steps = [mp.predict(np.full(3, 0.01 * t, np.float32))[1] for t in range(7)]
    raws = [s["rnd_oe_raw"] for s in steps]
    assert raws[0] == raws[1] == raws[2] != raws[3] == raws[4] == raws[5] != raws[6]
    assert m3.alarm_step(np.array([0.0, 1e9]), np.array([0.0, 1e9])) == 3  # scored step 1


def test_save_load_identity(tmp_path, calibrated):
    policy, mon = calibrated
    path = mon.save(tmp_path / "monitor.pt")
    mp = load_monitor(path, policy)
    back = mp.monitor
    assert back.config == mon.config
    np.testing.assert_array_equal(back.widths, mon.widths)
    np.testing.assert_array_equal(back.rnd_threshold, mon.rnd_threshold)
    np.testing.assert_array_equal(back.ace_threshold, mon.ace_threshold)
    emb = np.random.default_rng(3).normal(0, 1, (50, 3))
    np.testing.assert_array_equal(back.rnd_oe.score(emb), mon.rnd_oe.score(emb))
    chunks = policy.sample_chunks(np.zeros((4, 3)), 32)
    np.testing.assert_array_equal(back.ace_scores(chunks), mon.ace_scores(chunks))
    (tmp_path / "bad.pt").write_bytes(b"not a monitor")
    with pytest.raises(ValueError, match="corrupt") as info:
        Monitor.load(tmp_path / "bad.pt")
    msg = str(info.value)
    assert msg.startswith(f"{str(tmp_path / 'bad.pt')!r} is corrupt or not an rndx monitor file (")
    assert "weights_only" not in msg and "\n" not in msg
    assert len(msg) < len(str(tmp_path / "bad.pt")) + 100
    torch.save({"format": "something/else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"not an rndx monitor file \(expected format"):
        Monitor.load(tmp_path / "foreign.pt")
    torch.save({"format": "rndx.monitor/1"}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"not an rndx monitor file \(KeyError"):
        Monitor.load(tmp_path / "partial.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not an rndx monitor file \(the file ends early\)"):
        Monitor.load(tmp_path / "empty.pt")
    with pytest.raises(FileNotFoundError):
        Monitor.load(tmp_path / "missing.pt")


def test_top_level_rndx_monitor_calibrates_and_loads(tmp_path, calibrated):
    policy, mon = calibrated
    rng = np.random.default_rng(4)
    mp = rndx.monitor(
        policy,
        calibration=_traces(rng, 20),
        delta=0.2,
        window=3,
        rule="or",
        n_samples=16,
        rnd_epochs=5,
    )
    assert isinstance(mp, MonitoredPolicy)
    assert (mp.config.delta, mp.config.window, mp.config.rule) == (0.2, 3, "or")
    mon.save(tmp_path / "m.pt")
    again = rndx.monitor(policy, calibration=tmp_path / "m.pt")
    assert again.monitor.config.window == mon.config.window
    # a saved monitor keeps its own rule unless one is asked for
    mp.monitor.save(tmp_path / "or.pt")
    assert rndx.monitor(policy, calibration=tmp_path / "or.pt").config.rule == "or"
    assert rndx.monitor(policy, calibration=tmp_path / "or.pt", rule="and").config.rule == "and"


def test_import_rndx_exposes_subpackages_lazily():
    import subprocess
    import sys

    code = (
        "import sys, rndx\n"
        "assert 'torch' not in sys.modules and 'rndx.monitors' not in sys.modules\n"
        "assert {'agents', 'envs', 'monitor', 'monitors'} <= set(dir(rndx))\n"
        "rndx.monitors.load_monitor, rndx.monitors.MonitorWrapper, rndx.agents.load_agent\n"
        "rndx.envs.make_sb3_vec_env\n"
        "try:\n    rndx.nothing\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'rndx' has no attribute 'nothing'"


def test_too_few_calibration_rollouts_is_a_clear_error():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="at least 17 are needed"):
        calibrate(ToyPolicy(), _traces(rng, 10), MonitorConfig(delta=0.1))
    with pytest.raises(ValueError, match="delta"):
        MonitorConfig(delta=0.0)
    with pytest.raises(ValueError, match="rule"):
        MonitorConfig(rule="maybe")


@pytest.mark.parametrize(
    "key, value",
    [
        ("window", 1.5),
        ("score_every", 2.5),
        ("n_samples", 8.5),
        ("rnd_epochs", 1.5),
        ("seed", 0.5),
        ("window", "two"),
        ("window", True),
        ("n_samples", float("nan")),
    ],
)
def test_non_whole_counts_are_rejected_naming_the_key(key, value):
    shown = re.escape(f"{key}={value!r}")
    with pytest.raises(ValueError, match=rf"^{shown} must be an integer >= \d"):
        MonitorConfig(**{key: value})


def test_numeric_settings_are_checked_and_whole_floats_kept():
    cfg = MonitorConfig(window=3.0, score_every=np.int64(2), n_samples=8.0, ace_dims=[1.0])
    assert (cfg.window, cfg.score_every, cfg.n_samples, cfg.ace_dims) == (3, 2, 8, [1])
    assert all(type(v) is int for v in (cfg.window, cfg.score_every, cfg.n_samples))
    with pytest.raises(ValueError, match=r"ace_dims entry=0.5 must be an integer >= 0"):
        MonitorConfig(ace_dims=[0.5])
    with pytest.raises(ValueError, match=r"n_samples=1 must be an integer >= 2"):
        MonitorConfig(n_samples=1)
    with pytest.raises(ValueError, match=r"rnd_epochs=-1 must be an integer >= 0"):
        MonitorConfig(rnd_epochs=-1)
    for bad in (0, -0.1, float("inf"), "wide"):
        with pytest.raises(ValueError, match="ace_factor="):
            MonitorConfig(ace_factor=bad)
    with pytest.raises(ValueError, match=r"delta='often' must be a finite number in \(0, 1\)"):
        MonitorConfig(delta="often")
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match=r"^window=1.5 must be an integer >= 1$"):
        rndx.monitor(ToyPolicy(), calibration=_traces(rng, 20), window=1.5)


def test_gym_wrapper_puts_the_dict_into_info():
    env = gym.make("rndx/AGVWarehouse-v0")
    policy = tiny_chunk_policy(env.observation_space, env.action_space)
    rng = np.random.default_rng(6)
    low, high = env.observation_space.low, env.observation_space.high
    cal = [rng.uniform(low, high, (15, len(low))).astype(np.float32) for _ in range(20)]
    mp = rndx.monitor(policy, calibration=cal, delta=0.2, window=4, n_samples=8, rnd_epochs=2)
    wrapped = MonitorWrapper(env, mp)
    obs, info = wrapped.reset(seed=0)
    assert set(info["monitor"]) >= CONTRACT_KEYS and info["monitor"]["step"] == 0
    for t in range(1, 4):
        action, _ = policy.predict(obs)
        obs, _, term, trunc, info = wrapped.step(action)
        assert info["monitor"]["step"] == t
        if term or trunc:
            break
    env.close()


def test_adapters():
    from stable_baselines3 import PPO

    from rndx.envs import make_sb3_vec_env

    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 2, 0)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, policy_kwargs={"net_arch": [32]})
    ad = as_monitorable(model)
    obs = venv.reset()
    assert ad.embed(obs).shape == (2, 32)
    chunks = ad.sample_chunks(obs, 16)
    assert chunks.shape == (2, 16, 1, 2) and np.all(np.abs(chunks) <= 1.0)
    assert chunks[:, :, 0].std() > 0  # stochastic policy: B different actions
    chunk_policy = tiny_chunk_policy(venv.observation_space, venv.action_space)
    cad = as_monitorable(chunk_policy)
    assert cad.embed(obs[0]).shape == (1, 8)
    assert cad.sample_chunks(obs, 5).shape == (2, 5, 4, 2)
    assert as_monitorable(ToyPolicy()).__class__ is ToyPolicy  # a user's policy as it is
    with pytest.raises(TypeError, match="embed"):
        as_monitorable(object())
    with pytest.raises(ValueError, match="IntrinsicPPO"):
        ad.intrinsic_score_fn()
    rng = np.random.default_rng(8)
    low, high = venv.observation_space.low, venv.observation_space.high
    cal = [rng.uniform(low, high, (6, len(low))).astype(np.float32) for _ in range(4)]
    with pytest.raises(ValueError, match="needs an IntrinsicPPO agent.*ChunkFlowPolicy"):
        rndx.monitor(chunk_policy, calibration=cal, delta=0.5, rnd="reuse", n_samples=4)
    venv.close()


def test_reuse_the_exploration_rnd_of_an_intrinsic_agent(tmp_path):
    from rndx.agents.intrinsic_ppo import IntrinsicPPO
    from rndx.envs import make_sb3_vec_env

    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 2, 0)
    model = IntrinsicPPO(
        "MlpPolicy",
        venv,
        intrinsic_input="obs",
        n_steps=8,
        batch_size=16,
        policy_kwargs={"net_arch": [16]},
        intrinsic_kwargs={"hidden": 16, "output_dim": 8},
    )
    rng = np.random.default_rng(7)
    low, high = venv.observation_space.low, venv.observation_space.high
    cal = [rng.uniform(low, high, (12, len(low))).astype(np.float32) for _ in range(20)]
    model.intrinsic.update_input_stats(np.concatenate(cal))
    mp = rndx.monitor(model, calibration=cal, delta=0.2, window=2, rnd="reuse", n_samples=8)
    assert mp.monitor.rnd_oe is None  # no new RND pair: the agent's own one scores
    obs = cal[0][:3]
    expected = np.sqrt(model.intrinsic.compute(obs))
    np.testing.assert_allclose(mp.monitor.rnd_scores(None, obs), expected, rtol=1e-6)
    path = mp.save(tmp_path / "monitor.pt")
    again = load_monitor(path, model)
    np.testing.assert_allclose(again.monitor.rnd_scores(None, obs), expected, rtol=1e-6)
    _, steps = again.predict(obs)
    assert len(steps) == 3 and steps[0]["rnd_oe"] == pytest.approx(expected[0])
    # scored offline (python -m rndx.monitor evaluate): a loaded monitor binds the agent's RND
    ((r, _a),) = score_traces(Monitor.load(path), as_monitorable(model), [obs])
    np.testing.assert_allclose(r, expected, rtol=1e-6)
    pose_model = IntrinsicPPO("MlpPolicy", venv, intrinsic_input="pose", n_steps=8, batch_size=16)
    with pytest.raises(ValueError, match="pose"):
        rndx.monitor(pose_model, calibration=cal, delta=0.2, rnd="reuse", n_samples=8)
    venv.close()


class ScoreOnly:
    """A user's policy with only what scoring needs: embed and sample_chunks (no predict,
    reset or spaces); ``chunk_shape``/``embed_1d`` make its outputs mis-shaped."""

    def __init__(self, chunk_shape=None, embed_1d=False) -> None:
        self.inner, self.chunk_shape, self.embed_1d = ToyPolicy(), chunk_shape, embed_1d

    def embed(self, obs):
        e = self.inner.embed(obs)
        return e[:, 0] if self.embed_1d else e

    def sample_chunks(self, obs, n_samples):
        c = self.inner.sample_chunks(obs, n_samples)
        return c[:, :, 0] if self.chunk_shape == "no horizon" else c


def test_embed_and_sample_chunks_are_enough_to_score_predict_needs_the_policys_own():
    rng = np.random.default_rng(9)
    mp = rndx.monitor(ScoreOnly(), _traces(rng, 10), delta=0.3, window=2, n_samples=8)
    assert mp.observe(np.zeros(3, np.float32))["step"] == 0
    with pytest.raises(TypeError, match=r"ScoreOnly has no predict\(obs.*observe\(obs\)"):
        mp.predict(np.zeros(3, np.float32))
    env = MonitorWrapper(gym.make("Pendulum-v1"), mp)  # no reset on the policy: skipped
    obs, info = env.reset(seed=0)
    assert info["monitor"]["step"] == 0 and set(info["monitor"]) >= CONTRACT_KEYS
    assert env.step(np.zeros(1, np.float32))[4]["monitor"]["step"] == 1
    env.close()

    class EmbedOnly:
        def embed(self, obs):
            return obs

    with pytest.raises(TypeError, match="cannot monitor a EmbedOnly: it has no sample_chunks m"):
        as_monitorable(EmbedOnly())
    with pytest.raises(TypeError, match="no embed and no sample_chunks method"):
        rndx.monitor(object(), _traces(rng, 10), delta=0.3)


def test_alarm_latches_across_calls_with_another_number_of_envs(calibrated):
    policy, mon = calibrated
    mp = MonitoredPolicy(policy, mon)
    ok, nan = np.zeros(3, np.float32), np.full(3, np.nan, np.float32)
    mp.observe(nan)
    assert mp.observe(ok)["alarm"]
    with pytest.raises(ValueError, match=r"2 observation\(s\) while 1 episode\(s\) run.*reset"):
        mp.observe(np.stack([ok, ok]))
    with pytest.raises(ValueError, match="episode_start"):
        mp.observe(np.stack([ok, ok]), episode_start=[True, False])
    step = mp.observe(ok)  # the refused calls changed nothing: same episode, still latched
    assert step["alarm"] and step["alarm_step"] == 0 and step["step"] == 2
    # new episodes for all: any number of envs, fresh alarms
    steps = mp.observe(np.stack([ok, ok]), episode_start=[True, True])
    assert [(s["step"], s["alarm"]) for s in steps] == [(0, False), (0, False)]
    mp.reset()
    assert mp.observe(ok)["step"] == 0


def test_sb3_policy_under_broken_or_impossible_observations():
    """An SB3 agent's latent features are tanh-saturated far out, so RND-OE on them cannot
    see an observation x 1000; beyond the space's bounds it is out of distribution anyway.
    A NaN row gets a NaN action (SB3's Gaussian would raise) and the alarm."""
    from stable_baselines3 import PPO

    from rndx.envs import make_sb3_vec_env

    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 2, 0)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, policy_kwargs={"net_arch": [32]})
    rng = np.random.default_rng(3)
    low, high = venv.observation_space.low, venv.observation_space.high
    cal = [rng.uniform(low, high, (12, len(low))).astype(np.float32) for _ in range(20)]
    mp = rndx.monitor(model, calibration=cal, delta=0.2, window=2, n_samples=8, rnd_epochs=5)
    obs = venv.reset()
    action, steps = mp.predict(obs, episode_start=[True, True])
    assert np.isfinite(action).all() and not any(s["alarm"] for s in steps)
    action, steps = mp.predict(obs * 1000, episode_start=[True, True])
    assert all(s["alarm"] and np.isinf(s["rnd_oe"]) for s in steps)
    broken = obs.copy()
    broken[1, 0] = np.nan
    action, steps = mp.predict(broken, episode_start=[True, True])
    assert np.isfinite(action[0]).all() and np.isnan(action[1]).all()
    assert not steps[0]["alarm"] and steps[1]["alarm"]
    venv.close()


def test_a_discrete_action_sb3_agent_is_a_clear_error_up_front():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match=r"SB3 adapter needs a Box action space .*Discrete\(2\)"):
        rndx.monitor(model, calibration=[np.zeros((3, 4), np.float32)] * 20)


@pytest.mark.parametrize("threshold", ["cp_constant", "cp_band", "time_varying", "cp_joint"])
@pytest.mark.parametrize("fit_fraction", [0.3, 0.5, 0.7])
def test_min_rollouts_is_exactly_what_calibration_needs(threshold, fit_fraction, monkeypatch):
    rng = np.random.default_rng(10)
    policy = ToyPolicy()
    needs = {}

    def config(delta: float) -> MonitorConfig:
        return MonitorConfig(
            delta=delta, threshold=threshold, fit_fraction=fit_fraction, n_samples=2, rnd_epochs=0
        )

    for delta in (0.1, 0.2, 1 / 3, 0.5, 0.7, 0.9):
        cfg = config(delta)
        needs[delta] = need = cfg.min_rollouts()
        calibrate(policy, _traces(rng, need, length=3), cfg)  # succeeds with exactly need
        with pytest.raises(ValueError, match=rf"^{need - 1} successful .*at least {need} are"):
            calibrate(policy, _traces(rng, need - 1, length=3), cfg)
    # and the stated number is no more than the thresholds need: without the up-front check,
    # one fewer fails in the threshold fit itself (time_varying, which promises nothing, is
    # asked for as many as cp_constant by choice)
    if threshold != "time_varying":
        monkeypatch.setattr(MonitorConfig, "min_rollouts", lambda self: 0)
        for delta, need in needs.items():
            with pytest.raises(ValueError, match="rollout"):
                calibrate(policy, _traces(rng, need - 1, length=3), config(delta))


def test_mis_shaped_policy_outputs_name_the_method_and_the_expected_shape(calibrated):
    rng = np.random.default_rng(11)
    cal = _traces(rng, 10)
    with pytest.raises(
        ValueError,
        match=r"ScoreOnly.sample_chunks\(obs, 8\) returned shape \(\d+, 8, 2\) for "
        r"observations of shape \(\d+, 3\); expected \(n, B, H, D\) = \(\d+, 8, H, D\)",
    ):
        rndx.monitor(ScoreOnly(chunk_shape="no horizon"), cal, delta=0.3, n_samples=8)
    with pytest.raises(
        ValueError, match=r"ScoreOnly.embed\(obs\) returned shape \(\d+,\) .*expected \(n, E\)"
    ):
        rndx.monitor(ScoreOnly(embed_1d=True), cal, delta=0.3, n_samples=8)
    # at scoring time, against the embedding size RND-OE was fitted on (a monitor that does
    # not know its policy's sizes, as one from an older file)
    _, mon = calibrated
    mon = Monitor(mon.config, mon.widths, mon.rnd_threshold, mon.ace_threshold, mon.rnd_oe)

    class WideEmbedding(ToyPolicy):
        def embed(self, obs):
            e = super().embed(obs)
            return np.concatenate([e, e], axis=1)

    mp = MonitoredPolicy(WideEmbedding(), mon)
    with pytest.raises(ValueError, match=r"returned shape \(1, 6\) .*expected \(n, E\) = \(1, 3\)"):
        mp.observe(np.zeros(3, np.float32))


def test_load_monitor_checks_the_policy_sizes(tmp_path, calibrated):
    policy, mon = calibrated
    path = mon.save(tmp_path / "monitor.pt")
    assert load_monitor(path, ToyPolicy()).monitor.policy_spec == {
        "class": "ToyPolicy",
        "obs_dim": 3,
        "embedding_dim": 3,
        "action_dim": 2,
    }
    with pytest.raises(
        ValueError,
        match=r"calibrated for a ToyPolicy with observation dim 3, embedding dim 3; this "
        r"ToyPolicy has observation dim 2, embedding dim 2: calibrate a monitor for it$",
    ):
        load_monitor(path, ToyPolicy(obs_dim=2))
    wide_actions = ToyPolicy()
    wide_actions.action_space = spaces.Box(-1, 1, (3,), np.float32)
    with pytest.raises(ValueError, match=r"with action dim 2; this ToyPolicy has action dim 3"):
        rndx.monitor(wide_actions, calibration=path)

    class Projected(ToyPolicy):
        def embed(self, obs):
            return super().embed(obs)[:, :2]

    with pytest.raises(ValueError, match=r"with embedding dim 3; this Projected has embedding"):
        load_monitor(path, Projected())
    # a file saved before the sizes were stored loads without the check
    state = torch.load(path, weights_only=False)
    del state["policy"]
    torch.save(state, tmp_path / "old.pt")
    assert load_monitor(tmp_path / "old.pt", ToyPolicy(obs_dim=2)).monitor.policy_spec is None


class Bare:
    """A user's policy that says nothing of its sizes (no spaces, no obs_dim), with a reset
    that records its calls and ``n_actions`` action dims."""

    def __init__(self, n_actions: int = 2) -> None:
        self.inner, self.n_actions, self.resets = ToyPolicy(), n_actions, []

    def embed(self, obs):
        return self.inner.embed(obs)

    def sample_chunks(self, obs, n_samples):
        c = self.inner.sample_chunks(obs, n_samples)
        return np.concatenate([c] * 2, axis=-1)[..., : self.n_actions]

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.zeros((len(self.embed(obs)), self.n_actions), np.float32), state

    def reset(self, idx=None):
        self.resets.append(None if idx is None else list(np.asarray(idx)))


def test_a_policy_without_sizes_is_checked_against_the_calibrated_ones(tmp_path, calibrated):
    _, mon = calibrated
    path = mon.save(tmp_path / "monitor.pt")
    mp = load_monitor(path, Bare())
    assert mp.observe(np.zeros(3, np.float32))["step"] == 0
    # an image-sized array is not 7056 envs of one number each, nor 2 numbers a shape error
    with pytest.raises(ValueError, match=r"observation of shape \(84, 84, 3\); expected \(3,\)"):
        mp.observe(np.zeros((84, 84, 3), np.float32))
    with pytest.raises(ValueError, match=r"observation of shape \(2,\); expected \(3,\)"):
        mp.observe(np.zeros(2, np.float32))
    # the action size is probed from sample_chunks: named at load, not deep in ACE
    with pytest.raises(ValueError, match=r"with action dim 2; this Bare has action dim 3"):
        load_monitor(path, Bare(n_actions=3))


def test_predict_and_reset_reset_the_policy_observe_does_not(calibrated):
    _, mon = calibrated
    policy = Bare()
    mp = MonitoredPolicy(policy, mon)
    ok = np.zeros((2, 3), np.float32)
    mp.predict(ok, episode_start=[True, True])
    mp.predict(ok, episode_start=[False, False])
    mp.predict(ok, episode_start=[False, True])
    assert policy.resets == [None, [1]]
    mp.observe(ok, episode_start=[True, True])  # only watches
    assert policy.resets == [None, [1]]
    mp.reset([0])
    mp.reset()
    assert policy.resets == [None, [1], [0], None]


def test_a_rule_change_on_a_calibrated_monitor_is_a_copy_and_settings_must_match(
    tmp_path, calibrated
):
    policy, mon = calibrated
    a = rndx.monitor(policy, mon)
    b = rndx.monitor(policy, mon, rule="or")
    assert (a.config.rule, b.config.rule, mon.config.rule) == ("and", "or", "and")
    assert rndx.monitor(policy, mon, delta=0.1, window=5).config.window == 5  # same: fine
    path = mon.save(tmp_path / "monitor.pt")
    with pytest.raises(ValueError, match=r"calibrated with delta=0.1, window=5; .*new calibrat"):
        rndx.monitor(policy, path, delta=0.01, window=50)
    with pytest.raises(ValueError, match=r"calibrated with n_samples=32"):
        rndx.monitor(policy, path, n_samples=64)
    with pytest.raises(TypeError, match=r"unknown monitor option\(s\) \['windw'\]; allowed: "):
        rndx.monitor(policy, path, windw=3)
    with pytest.raises(TypeError, match="must be a calibrated rndx Monitor.*got NoneType"):
        MonitoredPolicy(policy, None)


def test_joint_thresholds_only_with_the_and_rule(tmp_path):
    rng = np.random.default_rng(16)
    traces = _traces(rng, 40)
    with pytest.raises(ValueError, match=r"rule='ace' with threshold='cp_joint': .*AND alarm"):
        calibrate(ToyPolicy(), traces, MonitorConfig(threshold="cp_joint", rule="ace"))
    cfg = MonitorConfig(delta=0.2, window=3, threshold="cp_joint", n_samples=8, rnd_epochs=3)
    mon = calibrate(ToyPolicy(), traces, cfg)
    with pytest.raises(ValueError, match=r"rule='or' with threshold='cp_joint'"):
        rndx.monitor(ToyPolicy(), mon, rule="or")
    # a file saved with another rule (older rndx allowed it) loads; it is used with AND
    state = mon.state_dict()
    state["config"]["rule"] = "or"
    torch.save(state, tmp_path / "old.pt")
    old = Monitor.load(tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"rule='or' with threshold='cp_joint'"):
        MonitoredPolicy(ToyPolicy(), old)
    assert rndx.monitor(ToyPolicy(), tmp_path / "old.pt", rule="and").config.rule == "and"
    # the evaluation's single-score and OR rows use cp_constant thresholds, not joint ones
    fresh = _traces(rng, 1)[0]
    ((r, a),) = score_traces(mon, as_monitorable(ToyPolicy()), [fresh])
    w = cfg.window
    single = mon.info["cp_constant_thresholds"]
    for rule, fires in (
        ("rnd_oe", window_sums(r, w) > single[0]),
        ("ace", window_sums(a, w) > single[1]),
    ):
        want = int(np.flatnonzero(fires)[0]) if fires.any() else None
        assert mon.alarm_step(r, a, rule) == want
    state = mon.state_dict()
    del state["info"]["cp_constant_thresholds"]
    torch.save(state, tmp_path / "older.pt")
    with pytest.raises(ValueError, match="needs its cp_constant thresholds.*recalibrate"):
        Monitor.load(tmp_path / "older.pt").alarm_step(r, a, "or")


def test_a_policy_reset_without_an_index_and_reset_before_scoring():
    """reset() without an argument is called as it is; the policy is reset before the first
    observation of an episode is scored (its embedding may read per-episode memory)."""

    class Memory(ToyPolicy):
        def __init__(self):
            super().__init__()
            self.memory, self.seen = 0.0, []

        def embed(self, obs):
            self.seen.append(self.memory)
            return super().embed(obs) + self.memory

        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            self.memory += 1.0
            return super().predict(obs, state, episode_start, deterministic)

        def reset(self):
            self.memory = 0.0

    rng = np.random.default_rng(17)
    cfg = MonitorConfig(delta=0.2, window=2, n_samples=8, rnd_epochs=2)
    policy = Memory()
    mp = MonitoredPolicy(policy, calibrate(policy, _traces(rng, 20), cfg))
    ok = np.zeros(3, np.float32)
    for _ in range(2):
        for t in range(3):
            policy.seen.clear()
            mp.predict(ok, episode_start=[t == 0])
            assert policy.seen[0] == float(t)  # the monitor's embed: memory 0 at a start
    env = MonitorWrapper(gym.make("Pendulum-v1"), mp)  # reset() without idx works there too
    env.reset(seed=0)
    env.close()


def test_flattened_rows_of_a_multi_axis_box_and_the_calibration_width():
    from stable_baselines3 import PPO

    class Grid(gym.Env):
        observation_space = spaces.Box(-1, 1, (5, 3), np.float32)
        action_space = spaces.Box(-1, 1, (2,), np.float32)

        def reset(self, *, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    model = PPO("MlpPolicy", Grid(), n_steps=8, batch_size=8, policy_kwargs={"net_arch": [8]})
    rng = np.random.default_rng(18)
    flat = [rng.uniform(-1, 1, (6, 15)).astype(np.float32) for _ in range(20)]
    mp = rndx.monitor(model, flat, delta=0.2, window=2, n_samples=8, rnd_epochs=2)
    a = mp.observe(flat[0][0], episode_start=[True])
    b = mp.observe(flat[0][0].reshape(5, 3), episode_start=[True])
    assert a["rnd_oe_raw"] == pytest.approx(b["rnd_oe_raw"])
    with pytest.raises(ValueError, match=r"expected \(5, 3\), \(n, 5, 3\) or \(n, 15\)"):
        mp.observe(np.zeros(7, np.float32))

    class Spaced(ToyPolicy):  # an observation_space, no obs_dim: rollouts checked against it
        def __init__(self):
            super().__init__(obs_dim=4)
            del self.obs_dim

        def embed(self, obs):
            return np.asarray(obs, np.float32)

    wide = [rng.normal(0, 0.1, (5, 5)).astype(np.float32) for _ in range(20)]
    with pytest.raises(
        ValueError, match=r"calibration rollout 0 has shape \(5, 5\); expected \(T, 4\)"
    ):
        rndx.monitor(Spaced(), wide, delta=0.2)


def test_options_given_with_a_calibrated_monitor_are_compared_as_calibration_reads_them(
    calibrated,
):
    rng = np.random.default_rng(19)
    mon = calibrate(ToyPolicy(), _traces(rng, 20), MonitorConfig(delta=0.2, ace_dims=[0, 1]))
    for same in ([0, 1], (0, 1), np.array([0, 1])):
        assert rndx.monitor(ToyPolicy(), mon, ace_dims=same).config.ace_dims == [0, 1]
    with pytest.raises(ValueError, match=r"calibrated with ace_dims=\[0, 1\]"):
        rndx.monitor(ToyPolicy(), mon, ace_dims=None)  # None means all dims: not the same
    with pytest.raises(ValueError, match=r"ace_dims=\[\] leaves ACE no action dimension"):
        MonitorConfig(ace_dims=[])


def test_a_reused_rnd_scores_with_the_monitored_agents_own_module():
    from rndx.agents.intrinsic_ppo import IntrinsicPPO
    from rndx.envs import make_sb3_vec_env

    venv = make_sb3_vec_env("rndx/AGVWarehouse-v0", 2, 0)
    kwargs = dict(intrinsic_input="obs", n_steps=8, batch_size=16, policy_kwargs={"net_arch": [16]})
    a, b = (IntrinsicPPO("MlpPolicy", venv, seed=s, **kwargs) for s in (0, 1))
    rng = np.random.default_rng(20)
    low, high = venv.observation_space.low, venv.observation_space.high
    cal = [rng.uniform(low, high, (12, len(low))).astype(np.float32) for _ in range(20)]
    for m in (a, b):
        m.intrinsic.update_input_stats(np.concatenate(cal))
    mp_a = rndx.monitor(a, calibration=cal, delta=0.2, window=2, rnd="reuse", n_samples=8)
    mp_b = rndx.monitor(b, mp_a.monitor, rule="or")
    obs = cal[0][:3]
    np.testing.assert_allclose(
        mp_b.monitor.rnd_scores(None, obs), np.sqrt(b.intrinsic.compute(obs)), rtol=1e-6
    )
    np.testing.assert_allclose(
        mp_a.monitor.rnd_scores(None, obs), np.sqrt(a.intrinsic.compute(obs)), rtol=1e-6
    )
    venv.close()


def test_stacked_equal_length_rollouts_calibrate_like_a_list():
    rng = np.random.default_rng(11)
    traces = _traces(rng, 20)
    cfg = MonitorConfig(delta=0.2, window=3, n_samples=8, rnd_epochs=3)
    a = calibrate(ToyPolicy(), traces, cfg)
    b = calibrate(ToyPolicy(), np.stack(traces), cfg)
    np.testing.assert_array_equal(a.rnd_threshold, b.rnd_threshold)
    np.testing.assert_array_equal(a.ace_threshold, b.ace_threshold)


def test_a_tampered_monitor_file_is_a_value_error(tmp_path, calibrated):
    _, mon = calibrated
    path = mon.save(tmp_path / "monitor.pt")
    state = torch.load(path, weights_only=False)
    state["rnd_threshold"] = torch.zeros(0)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"corrupt .*rnd_threshold of shape \(0,\)"):
        Monitor.load(tmp_path / "bad.pt")


def test_an_sb3_image_policy_is_monitored_channel_last_or_first():
    """A CnnPolicy trained on channel-last images (SB3 transposes them): calibration rollouts
    and observations in the env's own layout, batches and single images."""
    from stable_baselines3 import PPO

    class Camera(gym.Env):
        observation_space = spaces.Box(0, 255, (36, 36, 3), np.uint8)
        action_space = spaces.Box(-1, 1, (2,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.np_random.integers(0, 255, (36, 36, 3), dtype=np.uint8), {}

        def step(self, action):
            return self.reset()[0], 0.0, False, False, {}

    model = PPO("CnnPolicy", Camera(), n_steps=8, batch_size=8, policy_kwargs={"net_arch": [8]})
    assert model.observation_space.shape == (3, 36, 36)  # SB3's VecTransposeImage
    rng = np.random.default_rng(12)
    cal = [rng.integers(0, 255, (4, 36, 36, 3)).astype(np.uint8) for _ in range(20)]
    mp = rndx.monitor(model, calibration=cal, delta=0.2, window=2, n_samples=8, rnd_epochs=2)
    single = mp.observe(cal[0][0], episode_start=[True])
    assert single["step"] == 0 and np.isfinite(single["rnd_oe"])
    batch = mp.observe(np.stack([cal[0][1], cal[1][1]]), episode_start=[True, True])
    chw = mp.observe(np.stack([cal[0][1], cal[1][1]]).transpose(0, 3, 1, 2), episode_start=[1, 1])
    assert [s["rnd_oe_raw"] for s in batch] == pytest.approx([s["rnd_oe_raw"] for s in chw])
    action, _ = mp.predict(cal[0][2], episode_start=[True])
    assert np.shape(action) == (2,)
    with pytest.raises(ValueError, match=r"of shape \(36, 36\); expected \(3, 36, 36\)"):
        mp.observe(np.zeros((36, 36), np.float32))


def test_a_dict_observation_space_is_a_clear_error():
    from stable_baselines3 import PPO

    class Two(gym.Env):
        observation_space = spaces.Dict(
            {"a": spaces.Box(-1, 1, (2,)), "b": spaces.Box(-1, 1, (1,))}
        )
        action_space = spaces.Box(-1, 1, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    model = PPO("MultiInputPolicy", Two(), n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match=r"needs a Box observation space .*FlattenObservation"):
        rndx.monitor(model, calibration=[np.zeros((3, 3), np.float32)] * 20)


class Certain(ToyPolicy):
    """Every sampled chunk the same: ACE = 0 on every step, its threshold 0."""

    def sample_chunks(self, obs, n_samples):
        return np.zeros((len(self.embed(obs)), n_samples, self.horizon, 2))


def test_a_tie_with_the_threshold_is_not_an_alarm():
    """ACE takes discrete values; a policy that is always certain scores 0 against a
    threshold of 0, which must not alarm (alarm when a score EXCEEDS its threshold)."""
    rng = np.random.default_rng(13)
    mp = rndx.monitor(Certain(), _traces(rng, 20), delta=0.2, window=3, rule="ace", n_samples=8)
    assert mp.monitor.ace_threshold[0] == 0.0
    trace = _traces(rng, 1)[0]
    assert not any(mp.observe(o, episode_start=[t == 0])["alarm"] for t, o in enumerate(trace))
    ((r, a),) = score_traces(mp.monitor, mp.adapter, [trace])
    assert mp.monitor.alarm_step(r, a) is None


@pytest.mark.parametrize("threshold", ["time_varying", "cp_band"])
def test_online_and_offline_alarms_agree_when_scoring_every_kth_step(threshold):
    """score_every=2 with window 4 (not coprime) and per-step thresholds: the online monitor's
    windowed scores are sums of the last w SCORED steps' raw scores, compared with the
    threshold of that scored step; Monitor.alarm_step (the metrics tables) gives the same."""
    rng = np.random.default_rng(14)
    cfg = MonitorConfig(
        delta=0.2,
        window=4,
        score_every=2,
        threshold=threshold,
        rule="or",
        n_samples=16,
        rnd_epochs=5,
    )
    policy = ToyPolicy()
    mon = calibrate(policy, _traces(rng, 40, length=40), cfg)
    assert len(mon.rnd_threshold) > 1  # per scored step
    mp = MonitoredPolicy(policy, mon)
    late = 0
    for trial in range(8):
        trace = rng.normal(0.0, 0.05, (40, 3)).astype(np.float32)
        trace[20 + trial :, 0] += 0.05 * (1 + trial)  # a drift that starts late: late alarms
        steps = [mp.observe(o, episode_start=[t == 0]) for t, o in enumerate(trace)]
        raw_r = np.array([s["rnd_oe_raw"] for s in steps[::2]])
        raw_a = np.array([s["ace_raw"] for s in steps[::2]])
        for j, s in enumerate(steps[::2]):
            assert s["rnd_oe"] == pytest.approx(raw_r[max(0, j - 3) : j + 1].sum())
            assert s["ace"] == pytest.approx(raw_a[max(0, j - 3) : j + 1].sum())
            r_th, a_th = mon.thresholds_at(j)
            assert (s["rnd_oe_threshold"], s["ace_threshold"]) == (r_th, a_th)
        online = next((s["alarm_step"] for s in steps if s["alarm"]), None)
        assert mon.alarm_step(raw_r, raw_a) == online
        late += online is not None and online >= 4
    assert late >= 3  # the comparison covers alarms after the window has filled


def test_thresholds_are_calibrated_on_windowed_scores():
    """The conformal threshold is the order statistic of the threshold rollouts' maximum
    WINDOWED score: the same sums the monitor compares with it."""
    from rndx.monitors.calibration import order_statistic

    rng = np.random.default_rng(15)
    cfg = MonitorConfig(delta=0.1, window=5, n_samples=16, rnd_epochs=5)
    mon, scored = calibrate(ToyPolicy(), _traces(rng, 40), cfg, return_scores=True)
    assert len(scored) == 20
    for th, k in ((mon.rnd_threshold, 0), (mon.ace_threshold, 1)):
        maxima = [window_sums(s[k], 5).max() for s in scored]
        assert th[0] == order_statistic(maxima, 0.1)
