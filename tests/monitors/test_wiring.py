"""Wiring of the monitor's rollouts, evaluation tables and adapters: which observations a
rollout keeps, which flags and seeds reach the policy and the env, which rule each table row
reports and which column each figure lands in."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import rndx
import rndx.monitors.evaluation as evaluation
from rndx.envs.shifts import make_shifted_env
from rndx.monitors import Monitor, MonitorConfig, MonitoredPolicy, MonitorWrapper, calibrate
from rndx.monitors.policies import as_monitorable
from rndx.monitors.rollouts import Rollout, run_rollouts
from tests.monitors import tiny_chunk_policy
from tests.monitors.test_monitor import ToyPolicy as _MonitorToyPolicy

ENV = "rndx/AGVWarehouse-v0"


class ToyPolicy(_MonitorToyPolicy):
    """test_monitor's toy policy (3-d obs, spread with |obs[0]|), recording what predict and
    reset are called with."""

    def __init__(self) -> None:
        super().__init__()
        self.predicts: list[tuple[object, bool]] = []
        self.resets: list[object] = []

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        flags = None if episode_start is None else np.asarray(episode_start).tolist()
        self.predicts.append((flags, deterministic))
        return super().predict(obs, state, episode_start, deterministic)

    def reset(self, idx=None):
        self.resets.append(None if idx is None else np.asarray(idx).tolist())


def _traces(rng, n, length=12):
    return [rng.normal(0.0, 0.05, (length, 3)).astype(np.float32) for _ in range(n)]


@pytest.fixture(scope="module")
def toy_monitor():
    cfg = MonitorConfig(delta=0.2, window=3, n_samples=16, rnd_epochs=5)
    return calibrate(ToyPolicy(), _traces(np.random.default_rng(0), 20), cfg)


class Steering:
    """A fixed turn-and-drive command; records what each predict call received."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, bool]] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        self.calls.append((np.array(obs, copy=True), np.array(episode_start), deterministic))
        return np.tile([0.6, 0.8], (len(obs), 1)), state


@pytest.mark.parametrize(
    ("shift", "env_kwargs"),
    [("crowd", {}), ("goal_shift", {}), ("unseen_layout", {}), ("nominal", {"n_beams": 8})],
)
def test_batched_agv_rollouts_equal_the_seeded_single_env(shift, env_kwargs):
    """Episode k of run_rollouts is what make_shifted_env(env, shift, seed) shows after
    reset(seed=seed + k), step by step: the shift's options, its reset hook, the caller's env
    kwargs and the vehicle seeds of later batches all reach the batched core."""
    rolls = run_rollouts(
        Steering(), ENV, 3, seed=4, max_episode_steps=6, env_kwargs=env_kwargs, shift=shift, batch=2
    )
    env = make_shifted_env(ENV, shift, 4, max_episode_steps=6, **env_kwargs)
    try:
        for k, r in enumerate(rolls):
            obs, _ = env.reset(seed=4 + k)
            seen = [obs]
            for _ in range(r.length - 1):
                obs, *_ = env.step(np.array([0.6, 0.8], np.float32))
                seen.append(obs)
            np.testing.assert_allclose(r.obs, np.stack(seen), atol=1e-6, err_msg=f"episode {k}")
    finally:
        env.close()
    assert rolls[0].obs.shape[1] == (13 if env_kwargs else 37)


def test_rollouts_keep_the_observations_acted_on_and_flag_episode_starts():
    """Each rollout's rows are the observations predict got, one per step; episode_start is
    True on the first step of each batch only; the policy is reset once per batch; and
    ``deterministic`` reaches predict as given."""
    for det in (False, True):
        policy = Steering()
        rolls = run_rollouts(
            policy, ENV, 3, seed=0, max_episode_steps=8, batch=2, deterministic=det
        )
        assert policy.resets == 2  # batches of 2 and 1
        assert {d for *_, d in policy.calls} == {det}
        first = [c for c in policy.calls if c[0].shape[0] == 2]
        second = [c for c in policy.calls if c[0].shape[0] == 1]
        for batch, calls in ((rolls[:2], first), (rolls[2:], second)):
            assert calls[0][1].all() and not any(c[1].any() for c in calls[1:])
            assert len(calls) == max(r.length for r in batch)
            for i, r in enumerate(batch):
                np.testing.assert_array_equal(r.obs, np.stack([c[0][i] for c in calls[: r.length]]))
        assert len({r.obs[1].tobytes() for r in rolls}) == 3  # moving, seeded apart


class Scripted(gym.Env):
    """A 3-step episode; observation (value, reset seed, t) (reset option ``value`` sets the
    first entry). It ends by termination with ``info['is_success'] = succeed`` and reports no
    collision key."""

    observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, value: float = 0.0, succeed: bool = True) -> None:
        self.value, self.succeed = float(value), bool(succeed)

    def _obs(self):
        return np.array([self.value, self.seed_, self.t], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_, self.t = -1 if seed is None else seed, 0
        self.value = float((options or {}).get("value", self.value))
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        done = self.t >= 3
        return self._obs(), 0.0, done, False, ({"is_success": self.succeed} if done else {})


SCRIPTED = "rndx_test/Scripted-v0"


def _register() -> None:
    if SCRIPTED not in gym.registry:
        gym.register(SCRIPTED, entry_point=Scripted, max_episode_steps=50)


def test_gym_rollouts_take_env_kwargs_seeds_and_the_envs_own_outcome():
    _register()

    class Zero:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.zeros((len(obs), 1), np.float32), state

    rolls = run_rollouts(Zero(), SCRIPTED, 3, seed=10, env_kwargs={"value": 7.0}, batch=2)
    assert [r.length for r in rolls] == [3, 3, 3]
    for k, r in enumerate(rolls):
        np.testing.assert_array_equal(r.obs[:, 0], 7.0)  # the caller's env kwargs
        np.testing.assert_array_equal(r.obs[:, 1], 10 + k)  # reset seed seed + k
        np.testing.assert_array_equal(r.obs[:, 2], [0, 1, 2])  # the observations acted on
        assert r.success and not r.collision  # no collision key: no collision
    # terminated without success is a failure: the label is is_success, not termination
    failed = run_rollouts(Zero(), SCRIPTED, 2, seed=0, env_kwargs={"succeed": False})
    assert [(r.success, r.collision) for r in failed] == [(False, False), (False, False)]


# ------------------------------------------------------------------ evaluation tables


def _rolls_and_scores():
    """Six rollouts: two failures only RND-OE sees, one only ACE sees, one nobody sees;
    two successes, one of which ACE alarms on (steps 0..3, raw scores, window 1)."""
    quiet, high = np.zeros(4), np.array([0.0, 0.0, 5.0, 5.0])
    cases = [  # (success, rnd raw, ace raw)
        (False, high, quiet),
        (False, high, quiet),
        (False, quiet, high),
        (False, quiet, quiet),
        (True, quiet, quiet),
        (True, quiet, high),
    ]
    rolls = [Rollout(np.full((4, 3), i, np.float32), s, False) for i, (s, _, _) in enumerate(cases)]
    scores = {i: (r, a) for i, (_, r, a) in enumerate(cases)}
    return rolls, scores


def test_evaluate_shift_matches_each_table_row_to_its_rule(monkeypatch):
    rolls, scores = _rolls_and_scores()
    seen = {}

    def rollouts(policy, env_id, n, seed, max_steps, env_kwargs, shift, deterministic):
        seen.update(seed=seed, shift=shift, deterministic=deterministic, env_kwargs=env_kwargs)
        return rolls

    def score(monitor, adapter, traces):  # rollout i scored as case i (its obs hold i)
        return [scores[int(t[0, 0])] for t in traces]

    monkeypatch.setattr(evaluation, "run_rollouts", rollouts)
    monkeypatch.setattr(evaluation, "score_traces", score)
    monkeypatch.setattr(evaluation, "as_monitorable", lambda p: p)
    mon = Monitor(MonitorConfig(window=1), np.ones(2), np.ones(1), np.ones(1))
    res = evaluation.evaluate_shift(mon, None, "env", "crowd", 6, 31, 8, {"k": 1}, True)
    assert seen == {"seed": 31, "shift": "crowd", "deterministic": True, "env_kwargs": {"k": 1}}
    assert res["episodes"] == 6 and res["success_rate"] == pytest.approx(2 / 6)
    got = {name: (m["tpr"], m["tnr"], m["false_alarm_rate"]) for name, m in res["methods"].items()}
    assert got == {
        "FIPER (and)": (0.0, 1.0, 0.0),
        "RND-OE": (pytest.approx(2 / 4), 1.0, 0.0),
        "ACE": (pytest.approx(1 / 4), 0.5, 0.5),
        "OR": (pytest.approx(3 / 4), 0.5, 0.5),
    }
    assert res["methods"]["RND-OE"]["dt"] == pytest.approx(2 / 8)  # alarm at step 2 of 8


def test_the_table_puts_each_figure_in_its_column():
    m = {"tpr": 0.11, "tnr": 0.22, "accuracy": 0.33, "dt": 0.44, "twa": 0.55}
    results = [
        {
            "shift": "crowd",
            "success_rate": 0.25,
            "methods": {n: dict(m) for n in evaluation.METHODS},
        }
    ]
    results[0]["methods"]["ACE"] = {"tpr": 0.6, "tnr": 0.7, "accuracy": 0.8, "dt": 0.9, "twa": 1.0}
    lines = evaluation.format_table(results).splitlines()
    assert lines[0] == "| shift | success | method | TPR | TNR | accuracy | DT | TWA |"
    assert "| crowd | 0.25 | RND-OE | 0.11 | 0.22 | 0.33 | 0.44 | 0.55 |" in lines
    assert "| crowd | 0.25 | ACE | 0.60 | 0.70 | 0.80 | 0.90 | 1.00 |" in lines
    assert "| **mean** | | ACE | 0.60 | 0.70 | 0.80 | 0.90 | 1.00 |" in lines
    assert "| **mean** | | OR | 0.11 | 0.22 | 0.33 | 0.44 | 0.55 |" in lines


def test_calibration_rollouts_pass_the_settings_and_keep_only_the_successes(monkeypatch):
    rng = np.random.default_rng(0)
    seen = {}

    def rollouts(policy, env_id, n, seed, max_steps, env_kwargs, deterministic=False):
        seen.update(n=n, seed=seed, max_steps=max_steps, env_kwargs=env_kwargs, det=deterministic)
        out = [
            Rollout(rng.normal(0, 0.05, (6, 3)).astype(np.float32), True, False) for _ in range(n)
        ]
        out[3] = Rollout(np.full((6, 3), 9.0, np.float32), False, True)  # a failure: left out
        return out

    monkeypatch.setattr(evaluation, "run_rollouts", rollouts)
    cfg = MonitorConfig(delta=0.2, window=2, n_samples=8, rnd_epochs=2)
    mon, summary = evaluation.calibrate_from_rollouts(
        ToyPolicy(), "env", 21, 17, 6, {"k": 2}, cfg, deterministic=True
    )
    assert seen == {"n": 21, "seed": 17, "max_steps": 6, "env_kwargs": {"k": 2}, "det": True}
    assert summary == {"episodes": 21, "successes": 20}
    assert mon.info["n_rollouts"] == 20
    assert (mon.info["calibration_seed"], mon.info["calibration_episodes"]) == (17, 21)


# ------------------------------------------------------------------ the monitored policy


def test_monitored_predict_forwards_the_flags_to_the_policy(toy_monitor):
    policy = ToyPolicy()
    mp = MonitoredPolicy(policy, toy_monitor)
    ok = np.zeros((2, 3), np.float32)
    mp.predict(ok, episode_start=[True, True], deterministic=True)
    mp.predict(ok, episode_start=[False, True], deterministic=False)
    assert policy.predicts == [([True, True], True), ([False, True], False)]


def test_a_policy_reset_without_an_index_is_called_for_a_partial_start(toy_monitor):
    class AllAtOnce(ToyPolicy):
        def reset(self):
            self.resets.append("all")

    policy = AllAtOnce()
    mp = MonitoredPolicy(policy, toy_monitor)
    ok = np.zeros((2, 3), np.float32)
    mp.predict(ok, episode_start=[True, True])
    mp.predict(ok, episode_start=[False, True])  # env 1 starts: reset() resets both
    mp.reset([0])
    assert policy.resets == ["all", "all", "all"]


def test_wrapper_episodes_start_fresh_and_reset_the_policy(toy_monitor):
    """Each wrapped reset starts a new episode: step 0, the previous episode's alarm and
    window gone, the policy reset; each step's dict is for the observation returned."""
    _register()
    policy = ToyPolicy()
    mp = MonitoredPolicy(policy, toy_monitor)
    env = MonitorWrapper(gym.make(SCRIPTED), mp)
    try:
        _, info = env.reset(seed=0, options={"value": 50.0})  # beyond the policy's space
        assert info["monitor"]["step"] == 0 and info["monitor"]["alarm"]
        for t in (1, 2):
            info = env.step(np.zeros(1, np.float32))[4]
            assert info["monitor"]["step"] == t and info["monitor"]["alarm_step"] == 0
        _, info = env.reset(seed=1, options={"value": 0.0})
        step = info["monitor"]
        assert (step["step"], step["alarm"], step["alarm_step"]) == (0, False, None)
        assert np.isfinite(step["rnd_oe"]) and step["rnd_oe"] == pytest.approx(step["rnd_oe_raw"])
        info = env.step(np.zeros(1, np.float32))[4]
        assert info["monitor"]["step"] == 1 and not info["monitor"]["alarm"]
        assert policy.resets == [None, None]  # one reset per episode
    finally:
        env.close()


def test_new_calibrations_default_to_delta_0_1_window_10_and_the_and_rule():
    cal = _traces(np.random.default_rng(1), 20, length=4)
    mp = rndx.monitor(ToyPolicy(), cal, n_samples=4, rnd_epochs=1)
    assert (mp.config.delta, mp.config.window, mp.config.rule) == (0.1, 10, "and")


def test_a_saved_monitor_keeps_its_calibration_info(tmp_path, toy_monitor):
    toy_monitor.info["env_id"] = "rndx/AGVWarehouse-v0"
    back = Monitor.load(toy_monitor.save(tmp_path / "monitor.pt"))
    assert back.info == toy_monitor.info and back.info["n_rollouts"] == 20


# ------------------------------------------------------------------ adapters


def test_chunk_adapter_forwards_deterministic_and_resets_only_the_given_envs():
    env = gym.make(ENV)
    policy = tiny_chunk_policy(env.observation_space, env.action_space)
    env.close()
    ad = as_monitorable(policy)
    rng = np.random.default_rng(2)
    low, high = env.observation_space.low, env.observation_space.high
    obs, nxt = (rng.uniform(low, high, (2, len(low))).astype(np.float32) for _ in range(2))

    def act(o, start, det):
        return ad.predict(o, episode_start=np.array(start), deterministic=det)[0]

    a, b = act(obs, [True, True], True), act(obs, [True, True], True)
    np.testing.assert_array_equal(a, b)  # deterministic: the prior's mean
    a, b = act(obs, [True, True], False), act(obs, [True, True], False)
    assert not np.allclose(a, b)  # stochastic: fresh noise each plan
    # env 0 is mid-chunk (execute 2): resetting env 1 must not make env 0 replan
    act(obs, [True, True], True)
    queued = act(nxt, [False, False], True)[0]
    act(obs, [True, True], True)
    ad.reset([1])
    np.testing.assert_array_equal(act(nxt, [False, False], True)[0], queued)
    act(obs, [True, True], True)
    ad.reset([0])  # and resetting env 0 does make it replan
    assert not np.allclose(act(nxt, [False, False], True)[0], queued)


def test_sb3_chunks_are_draws_of_the_policys_own_gaussian():
    """B single actions per observation: around the action the agent takes deterministically,
    with the agent's standard deviation."""
    import torch
    from stable_baselines3 import PPO

    class Line(gym.Env):
        observation_space = spaces.Box(-1, 1, (4,), np.float32)
        action_space = spaces.Box(-5, 5, (2,), np.float32)

        def reset(self, *, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    kwargs = {"net_arch": [16], "log_std_init": -2.0}
    model = PPO("MlpPolicy", Line(), n_steps=8, batch_size=8, policy_kwargs=kwargs, seed=0)
    with torch.no_grad():  # an action mean well away from 0 (SB3 initialises it near 0)
        model.policy.action_net.weight.mul_(100.0)
    obs = np.random.default_rng(3).uniform(-1, 1, (3, 4)).astype(np.float32)
    det, _ = model.predict(obs, deterministic=True)
    assert np.abs(det).max() > 0.3
    chunks = as_monitorable(model).sample_chunks(obs, 4000)
    assert chunks.shape == (3, 4000, 1, 2)
    np.testing.assert_allclose(chunks[:, :, 0].mean(axis=1), det, atol=0.02)
    np.testing.assert_allclose(chunks[:, :, 0].std(axis=1), np.exp(-2.0), rtol=0.1)
