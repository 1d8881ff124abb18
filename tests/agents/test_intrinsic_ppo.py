"""IntrinsicPPO: two GAEs by hand, two value heads, bootstrapping, save/load, logging, e2e."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from rndx.agents.intrinsic_ppo import DualRolloutBuffer, DualValuePolicy, IntrinsicPPO, gae
from rndx.envs import make_sb3_vec_env
from rndx.paths import config_dir
from rndx.train import train


def _buffer(n_steps: int = 3) -> DualRolloutBuffer:
    return DualRolloutBuffer(
        n_steps,
        spaces.Box(-1, 1, (1,)),
        spaces.Box(-1, 1, (1,)),
        gae_lambda=0.8,
        gamma=0.9,
        n_envs=1,
        gamma_int=0.99,
        ext_coef=2.0,
        int_coef=1.0,
        intrinsic_dim=1,
    )


def test_two_gaes_by_hand_with_an_episode_end_in_the_middle() -> None:
    """T=3, one env; the episode ends after step 1, so step 2 starts a new episode.

    extrinsic (episodic, gamma 0.9, lambda 0.8), r = [1, 0, 2], V = [0.5, 0.2, 0.1], V_T = 0.3
      t=2: delta = 2 + 0.9*0.3 - 0.1 = 2.17                       A = 2.17
      t=1: next is a new episode -> delta = 0 - 0.2 = -0.2         A = -0.2
      t=0: delta = 1 + 0.9*0.2 - 0.5 = 0.68;  A = 0.68 + 0.72*(-0.2) = 0.536
    intrinsic (non-episodic, gamma 0.99), r = [0.1, 0.4, 0.3], V = [1.0, 0.9, 0.8], V_T = 0.7
      t=2: delta = 0.3 + 0.99*0.7 - 0.8 = 0.193                    A = 0.193
      t=1: runs through the episode end: delta = 0.4 + 0.99*0.8 - 0.9 = 0.292
           A = 0.292 + 0.792*0.193 = 0.444856
      t=0: delta = 0.1 + 0.99*0.9 - 1.0 = -0.009;  A = -0.009 + 0.792*0.444856 = 0.34332595
    """
    buf = _buffer()
    starts = [1.0, 0.0, 1.0]
    for t, (r, v_ext, v_int) in enumerate(zip([1.0, 0.0, 2.0], [0.5, 0.2, 0.1], [1.0, 0.9, 0.8])):
        buf.add(
            np.zeros((1, 1)),
            np.zeros((1, 1)),
            np.array([r]),
            np.array([starts[t]]),
            torch.tensor([[v_ext, v_int]]),
            torch.zeros(1),
        )
    buf.rewards_int = np.array([[0.1], [0.4], [0.3]], dtype=np.float32)
    buf.compute_returns_and_advantage(torch.tensor([[0.3, 0.7]]), dones=np.array([False]))
    a_ext = np.array([0.536, -0.2, 2.17])
    a_int = np.array([0.34332595, 0.444856, 0.193])
    np.testing.assert_allclose(buf.advantages_ext[:, 0], a_ext, rtol=1e-5)
    np.testing.assert_allclose(buf.advantages_int[:, 0], a_int, rtol=1e-5)
    np.testing.assert_allclose(buf.advantages[:, 0], 2 * a_ext + a_int, rtol=1e-5)
    np.testing.assert_allclose(buf.returns[:, 0], a_ext + [0.5, 0.2, 0.1], rtol=1e-5)
    np.testing.assert_allclose(buf.returns_int[:, 0], a_int + [1.0, 0.9, 0.8], rtol=1e-5)


def test_gae_last_step_done_cuts_only_the_extrinsic_stream() -> None:
    r, v = np.array([[1.0]]), np.array([[0.5]])
    starts = np.zeros((1, 1))
    ext = gae(r, v, starts, np.array([2.0]), np.array([True]), 0.9, 0.95, episodic=True)
    intr = gae(r, v, starts, np.array([2.0]), np.array([True]), 0.9, 0.95, episodic=False)
    assert ext[0, 0] == pytest.approx(1.0 - 0.5)
    assert intr[0, 0] == pytest.approx(1.0 + 0.9 * 2.0 - 0.5)


def _gae_numpy(r, v, starts, last_v, last_done, gamma, lam, episodic):  # noqa: ANN001
    """The plain numpy GAE loop the compiled kernel replaced: its float32 reference."""
    adv, last = np.zeros_like(r), np.zeros(r.shape[1], dtype=np.float32)
    for t in reversed(range(r.shape[0])):
        last_t = t == r.shape[0] - 1
        nt = 1.0 - (last_done.astype(np.float32) if last_t else starts[t + 1])
        nt = nt if episodic else np.ones_like(nt)
        delta = r[t] + gamma * (last_v if last_t else v[t + 1]) * nt - v[t]
        adv[t] = last = delta + gamma * lam * nt * last
    return adv


@pytest.mark.parametrize("episodic", [True, False])
def test_compiled_gae_is_bit_identical_to_the_numpy_loop(episodic: bool) -> None:
    rng = np.random.default_rng(1)
    for scale in (1e-3, 1.0, 50.0):
        r = (scale * rng.standard_normal((64, 8))).astype(np.float32)
        v = rng.standard_normal((64, 8)).astype(np.float32)
        starts = (rng.random((64, 8)) < 0.1).astype(np.float32)
        last_v = rng.standard_normal(8).astype(np.float32)
        last_done = rng.random(8) < 0.5
        for gamma, lam in ((0.999, 0.95), (0.99, 0.95), (0.9, 0.8)):
            want = _gae_numpy(r, v, starts, last_v, last_done, gamma, lam, episodic)
            got = gae(r, v, starts, last_v, last_done, gamma, lam, episodic=episodic)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)


def test_minibatches_hold_whole_transitions_in_both_streams() -> None:
    """Every sampled row is one transition: observation, action, both values, both returns,
    advantage and predictor inputs all belong to the same (step, env), and an epoch of
    minibatches covers each transition once."""
    n_steps, n_envs = 6, 4
    buf = DualRolloutBuffer(
        n_steps,
        spaces.Box(-1, 1, (3,)),
        spaces.Box(-1, 1, (2,)),
        n_envs=n_envs,
        intrinsic_dim=2,
        target_dim=5,
    )
    ids = np.arange(n_steps * n_envs, dtype=np.float32).reshape(n_steps, n_envs)  # t * n_envs + e
    for t in range(n_steps):
        buf.add(
            np.repeat(ids[t, :, None], 3, axis=1),
            np.repeat(ids[t, :, None], 2, axis=1) + 0.5,
            np.zeros(n_envs),
            np.zeros(n_envs),
            torch.as_tensor(np.stack([ids[t] + 0.25, ids[t] + 0.75], axis=1)),
            torch.as_tensor(-ids[t]),
        )
    buf.compute_returns_and_advantage(torch.zeros((n_envs, 2)), np.zeros(n_envs, dtype=bool))
    buf.returns, buf.returns_int = ids + 1000.0, ids + 2000.0
    buf.advantages = ids + 3000.0
    buf.intrinsic_x = np.repeat(ids[..., None], 2, axis=2) + 4000.0
    buf.intrinsic_target = np.repeat(ids[..., None], 5, axis=2) + 5000.0
    seen = []
    for data in buf.get(batch_size=7):
        i = data.observations[:, 0]
        np.testing.assert_array_equal(data.observations, i[:, None].expand(-1, 3))
        np.testing.assert_array_equal(data.actions, i[:, None].expand(-1, 2) + 0.5)
        np.testing.assert_array_equal(data.old_values, torch.stack([i + 0.25, i + 0.75], 1))
        np.testing.assert_array_equal(data.old_log_prob, -i)
        np.testing.assert_array_equal(data.returns, torch.stack([i + 1000, i + 2000], 1))
        np.testing.assert_array_equal(data.advantages, i + 3000)
        np.testing.assert_array_equal(data.intrinsic_x, i[:, None].expand(-1, 2) + 4000)
        np.testing.assert_array_equal(data.intrinsic_target, i[:, None].expand(-1, 5) + 5000)
        seen += i.tolist()
    assert sorted(seen) == ids.ravel().tolist()


def _agent(env_kwargs: dict | None = None, **kwargs) -> IntrinsicPPO:
    env = make_sb3_vec_env(
        "rndx/AGVWarehouse-v0", 4, seed=0, max_episode_steps=30, env_kwargs=env_kwargs
    )
    args = dict(n_steps=32, batch_size=64, n_epochs=2, seed=0, init_steps=5)
    args.update(kwargs)
    return IntrinsicPPO("MlpPolicy", env, **args)


@pytest.mark.parametrize("intrinsic", ["rnd", "rdd"])
def test_a_seeded_agent_draws_the_same_networks_whatever_the_global_rng(intrinsic) -> None:
    """The module's target and predictor are drawn after seeding (SB3 seeds only later, in
    its own setup): benchmarks that build agents without seeding torch stay reproducible."""
    torch.manual_seed(123)
    a = _agent(intrinsic=intrinsic)
    torch.manual_seed(456)
    b = _agent(intrinsic=intrinsic)
    for pa, pb in zip(a.intrinsic.state_dict().values(), b.intrinsic.state_dict().values()):
        assert torch.equal(pa, pb)
    for pa, pb in zip(a.policy.state_dict().values(), b.policy.state_dict().values()):
        assert torch.equal(pa, pb)


def test_policy_has_two_value_heads_covered_by_the_optimiser() -> None:
    model = _agent()
    assert isinstance(model.policy, DualValuePolicy)
    assert model.policy.value_net.out_features == 2
    opt_params = {id(p) for g in model.policy.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in model.policy.value_net.parameters()} <= opt_params
    obs = torch.as_tensor(model.env.reset())
    assert model.policy.predict_values(obs).shape == (4, 2)


class _BootstrapCheck(BaseCallback):
    """Records gamma * V_ext(final obs) at every truncation, then checks the buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[tuple[int, int], float] = {}
        self.checked = 0

    def _on_step(self) -> bool:
        t = self.locals["n_steps"]
        for e, info in enumerate(self.locals["infos"]):
            if info.get("TimeLimit.truncated"):
                obs = torch.as_tensor(info["terminal_observation"][None])
                with torch.no_grad():
                    v = self.model.policy.predict_values(obs)[0]
                self.expected[(t, e)] = self.model.gamma * float(v[0])
        return True

    def _on_rollout_end(self) -> None:
        rewards = self.locals["rollout_buffer"].rewards
        for (t, e), value in self.expected.items():
            assert rewards[t, e] == pytest.approx(value, rel=1e-5, abs=1e-7)
            self.checked += 1
        others = np.ones_like(rewards, dtype=bool)
        for t, e in self.expected:
            others[t, e] = False
        assert np.all(rewards[others] == 0.0)  # no other reward: penalty 0, no goal reached


def test_truncation_bootstraps_the_extrinsic_stream_from_the_final_observation() -> None:
    model = _agent(env_kwargs={"collision_penalty": 0.0}, n_steps=64)
    check = _BootstrapCheck()
    model.learn(64 * 4, callback=check)
    assert check.checked > 0


@pytest.mark.parametrize("kind,inp", [("rnd", "obs"), ("rdd", "pose"), ("rnd", "pose_tiles")])
def test_save_load_gives_identical_actions_and_intrinsic_rewards(
    tmp_path: Path, kind: str, inp: str
) -> None:
    model = _agent(intrinsic=kind, intrinsic_input=inp)
    model.learn(256)
    model.save(tmp_path / "m.zip")
    # without an env: a pose_tiles agent keeps the floor extent it read at construction
    loaded = IntrinsicPPO.load(tmp_path / "m.zip", env=None if inp == "pose_tiles" else model.env)
    obs = model.env.reset()
    infos = [{"pose": np.array([1.0, 2.0, 0.0, 1.0], np.float32)}] * 4
    a1, _ = model.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    x = model.intrinsic_inputs(obs, infos)
    np.testing.assert_array_equal(model.intrinsic.compute(x), loaded.intrinsic.compute(x))
    for name, t in model.intrinsic.state_dict().items():
        assert torch.equal(t, loaded.intrinsic.state_dict()[name]), name
    assert loaded._intrinsic_ready  # no second random-action initialisation after loading


def test_pose_tiles_read_the_floor_from_the_env() -> None:
    model = _agent(intrinsic_input="pose_tiles", input_kwargs={"tile_size": 2.0, "tilings": 1})
    w, h = model.env.unwrapped.core.world.layout.size
    assert model.input_extent == (w, h)
    assert model.selector.dim(0) == (int(w // 2) + 1) * (int(h // 2) + 1)
    with pytest.raises(ValueError, match="extent"):
        IntrinsicPPO("MlpPolicy", "Pendulum-v1", intrinsic_input="pose_tiles")
    with pytest.raises(ValueError, match="tile_sise.*allowed: tile_size, tilings"):
        _agent(intrinsic_input="pose_tiles", input_kwargs={"tile_sise": 2.0})
    # tile settings with another input would be ignored without a word
    with pytest.raises(ValueError, match="are for intrinsic_input 'pose_tiles'.*'pose'"):
        _agent(intrinsic_input="pose", input_kwargs={"tile_size": 2.0})


class _KeyRecorder(KVWriter):
    def __init__(self) -> None:
        self.keys: set[str] = set()

    def write(self, key_values, key_excluded, step=0) -> None:  # noqa: ANN001
        self.keys |= set(key_values)


def test_logs_the_documented_tensorboard_keys() -> None:
    model = _agent()
    recorder = _KeyRecorder()
    model.set_logger(Logger(folder=None, output_formats=[recorder]))
    model.learn(512)
    for k in (
        "intrinsic/reward_mean",
        "intrinsic/reward_std",
        "intrinsic/predictor_loss",
        "train/value_loss_ext",
        "train/value_loss_int",
        "train/policy_gradient_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/clip_fraction",
        "rollout/ep_rew_mean",
        "rollout/success_rate",
    ):
        assert k in recorder.keys, k


@pytest.mark.parametrize("agent", ["ppo", "ppo_rnd", "ppo_rdd"])
def test_end_to_end_smoke_run_for_each_agent(tmp_path: Path, agent: str) -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train", overrides=["experiment=smoke", f"agent={agent}", f"run_dir={tmp_path}"]
        )
    train(cfg)
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["episodes"] == cfg.eval.episodes
    assert (tmp_path / "model.zip").is_file() and any((tmp_path / "tb").rglob("events*"))


class _SpaceEnv(gym.Env):
    """Random observations from any space, episodes of 10 steps (so truncations happen)."""

    def __init__(self, space: spaces.Space) -> None:
        self.observation_space = space
        self.action_space = spaces.Box(-1, 1, (2,))
        self._t = 0

    def reset(self, seed=None, options=None):  # noqa: ANN001
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):  # noqa: ANN001
        self._t += 1
        return self.observation_space.sample(), 0.0, False, self._t >= 10, {}


def _space_venv(space: spaces.Space):
    return make_vec_env(lambda: _SpaceEnv(space), n_envs=2, seed=0)


_SMALL = dict(n_steps=16, batch_size=32, n_epochs=1, init_steps=5, seed=0)


@pytest.mark.parametrize("inp", ["obs", [0, 5]])
def test_an_n_d_box_observation_feeds_the_module_flattened(tmp_path: Path, inp) -> None:
    model = IntrinsicPPO(
        "MlpPolicy", _space_venv(spaces.Box(-1, 1, (2, 3))), intrinsic_input=inp, **_SMALL
    )
    model.learn(64)  # init rollout, two rollouts with truncations, updates
    obs = model.env.reset()
    x = model.intrinsic_inputs(obs)
    assert x.shape == (2, 6 if inp == "obs" else 2)
    np.testing.assert_array_equal(x, obs.reshape(2, -1)[:, slice(None) if inp == "obs" else inp])
    model.save(tmp_path / "m.zip")
    loaded = IntrinsicPPO.load(tmp_path / "m.zip", env=model.env)
    np.testing.assert_array_equal(model.intrinsic.compute(x), loaded.intrinsic.compute(x))


_DICT = spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Box(-1, 1, (2,))})


@pytest.mark.parametrize("policy", ["MlpPolicy", "MultiInputPolicy"])
def test_a_dict_observation_space_is_told_to_flatten(policy: str) -> None:
    with pytest.raises(
        ValueError, match=r"needs a flat or n-D Box .*got Dict\(.*FlattenObservation"
    ):
        IntrinsicPPO(policy, _space_venv(_DICT), **_SMALL)


@pytest.mark.parametrize(
    ("policy", "got"),
    [(ActorCriticPolicy, "ActorCriticPolicy"), ("CnnPolicy", "'CnnPolicy'"), ("Mlp", "'Mlp'")],
)
def test_a_policy_other_than_the_dual_value_one_is_named(policy, got: str) -> None:
    with pytest.raises(ValueError, match=rf"policy must be 'MlpPolicy' .*; got {got}$"):
        IntrinsicPPO(policy, _space_venv(spaces.Box(-1, 1, (4,))), **_SMALL)


def test_activation_by_name_in_python_survives_save_load(tmp_path: Path) -> None:
    def activations(m: IntrinsicPPO) -> set[type]:
        return {type(x) for x in m.policy.mlp_extractor.modules() if not list(x.children())}

    venv = _space_venv(spaces.Box(-1, 1, (4,)))
    model = IntrinsicPPO("MlpPolicy", venv, policy_kwargs={"activation_fn": "ReLU"}, **_SMALL)
    assert nn.ReLU in activations(model) and nn.Tanh not in activations(model)
    model.save(tmp_path / "m.zip")
    assert nn.ReLU in activations(IntrinsicPPO.load(tmp_path / "m.zip"))
    with pytest.raises(ValueError, match=r"activation_fn='swish'; allowed: tanh, relu"):
        IntrinsicPPO("MlpPolicy", venv, policy_kwargs={"activation_fn": "swish"}, **_SMALL)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("rndx/AGVWarehouse-v0", {"num_envs": 4, "vectorization_mode": "vector_entry_point"}),
        ("Pendulum-v1", {"num_envs": 2}),
    ],
)
def test_a_gymnasium_vector_env_is_pointed_to_an_sb3_one(env_id: str, kwargs: dict) -> None:
    venv = gym.make_vec(env_id, **kwargs)
    n = kwargs["num_envs"]
    with pytest.raises(
        TypeError,
        match=rf"SB3 needs its own VecEnv: use rndx.envs.make_sb3_vec_env\('{env_id}', {n}",
    ):
        IntrinsicPPO("MlpPolicy", venv, **_SMALL)
    venv.close()


class _IntCoefs(BaseCallback):
    """The intrinsic coefficient each rollout used (set on the buffer before collecting)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def _on_rollout_start(self) -> None:
        self.seen.append(float(self.model.rollout_buffer.int_coef))

    def _on_step(self) -> bool:
        return True


def test_a_linear_int_coef_schedule_starts_each_learn_call_from_its_own_progress() -> None:
    model = _agent(int_coef_schedule="linear", int_coef=1.0, int_coef_end=0.0)
    per_call = 32 * 4  # n_steps x envs
    for _ in range(2):  # the second call (reset_num_timesteps) starts at 1 again, not at 0
        seen = _IntCoefs()
        model.learn(4 * per_call, callback=seen)
        np.testing.assert_allclose(seen.seen, [1.0, 0.75, 0.5, 0.25])
    seen = _IntCoefs()  # continued: progress over the raised total, 1024 of 1536 steps done
    model.learn(4 * per_call, callback=seen, reset_num_timesteps=False)
    np.testing.assert_allclose(seen.seen, [0.5, 0.375, 0.25, 0.125])


def test_the_extrinsic_discount_defaults_to_the_papers_and_can_be_set() -> None:
    assert _agent().gamma == 0.999  # gamma_ext of Burda et al.; SB3's PPO default is 0.99
    assert _agent(gamma=0.99).gamma == 0.99


def test_loading_a_missing_file_names_the_path_given(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*nope.zip' not found$"):
        IntrinsicPPO.load(tmp_path / "nope.zip")  # SB3 said 'nope.zip.zip'
    model = _agent()
    model.save(tmp_path / "m.zip")
    assert IntrinsicPPO.load(tmp_path / "m").num_timesteps == model.num_timesteps  # SB3's .zip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_an_agent_loaded_onto_the_gpu_keeps_training(tmp_path: Path) -> None:
    model = _agent()
    model.learn(256)
    model.save(tmp_path / "m.zip")
    loaded = IntrinsicPPO.load(tmp_path / "m.zip", env=model.env, device="cuda")
    loaded.learn(256, reset_num_timesteps=False)  # the normaliser's per-env return was on cuda
    assert loaded.num_timesteps == 512


def test_input_normalisation_starts_from_init_steps_random_action_steps_per_env() -> None:
    """RND's start: the module's input statistics come from init_steps random-action steps of
    every env before the first rollout (5 x 4 envs here), the policy not involved."""
    agent = _agent(init_steps=5)
    agent._setup_learn(total_timesteps=128)
    stats = agent.intrinsic.obs_rms
    assert float(stats.count) == pytest.approx(1e-4)  # the epsilon prior: nothing seen yet
    agent._init_input_stats(agent.env)
    assert float(stats.count) == pytest.approx(5 * 4 + 1e-4)
    assert float(stats.var.min()) > 0 and agent._intrinsic_ready
    none = _agent(init_steps=0)
    none._setup_learn(total_timesteps=128)
    none._init_input_stats(none.env)
    assert float(none.intrinsic.obs_rms.count) == pytest.approx(1e-4)
