"""IntrinsicPPO's wiring, checked against the formulas: which observation the module scores,
how its reward is normalised inside a rollout, PPO's two-head loss and one gradient step,
the predictor's training and its optimiser state in a save.

These close gaps a mutation review found: one-line bugs in these places (the module
scoring s_t instead of s_{t+1}, the reward left unnormalised or accumulated across envs, an
inverted importance ratio, V_int never fitted, the predictor never trained, ...) passed the
rest of the suite.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from rndx.agents.intrinsic_ppo import IntrinsicPPO


class _Counter(gym.Env):
    """Observation [t, 1]: t steps since the reset; the episode terminates at t = 3, so
    the terminal observation [3, 1] differs from the reset one [0, 1]."""

    observation_space = spaces.Box(0.0, 10.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):  # noqa: ANN001
        super().reset(seed=seed)
        self._t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):  # noqa: ANN001
        self._t += 1
        obs = np.array([self._t, 1.0], np.float32)
        return obs, 0.0, self._t >= 3, False, {}


def _agent(n_envs: int = 3, **kwargs) -> IntrinsicPPO:
    venv = make_vec_env(_Counter, n_envs=n_envs, seed=0)
    args = dict(
        intrinsic_input="obs",
        n_steps=8,
        batch_size=8 * n_envs,
        n_epochs=1,
        init_steps=2,
        seed=0,
        policy_kwargs={"net_arch": [16]},
    )
    args.update(kwargs)
    return IntrinsicPPO("MlpPolicy", venv, **args)


class _Rollouts(BaseCallback):
    """Copies of the rollout buffer's arrays at each rollout end."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, np.ndarray]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buf = self.locals["rollout_buffer"]
        self.seen.append(
            {
                k: np.array(getattr(buf, k), copy=True)
                for k in ("observations", "intrinsic_inputs", "rewards_int")
            }
        )


def test_the_module_scores_the_observation_each_transition_led_to() -> None:
    """r_int(s_{t+1}): the next observation, and at an episode end the terminal one (the env
    has already returned the reset observation there)."""
    model = _agent()
    rec = _Rollouts()
    model.learn(2 * 8 * 3, callback=rec)
    for r in rec.seen:
        t_now, t_next = r["observations"][..., 0], r["intrinsic_inputs"][..., 0]
        np.testing.assert_array_equal(t_next, t_now + 1)  # 1, 2, 3: never the reset's 0
        assert (t_next == 3).any()  # episode ends are in the rollout


def test_intrinsic_rewards_are_divided_by_the_running_std_of_each_envs_intrinsic_return() -> None:
    """Inside the agent: raw bonuses (known here) -> returns accumulated over time per env
    with gamma_int, carried across rollouts; the std over every return so far divides them."""
    model = _agent(gamma=0.999, gamma_int=0.9)
    n_envs, n_steps = 3, 8
    calls = []

    def compute(flat):  # (T * n_envs,) in the buffer's row-major (t, env) order
        k = len(calls)
        t = np.arange(n_steps)[:, None] + k * n_steps
        raw = (np.arange(n_envs)[None, :] + 1.0) * (1.0 + (t % 3)) * (1.0 + 9.0 * (t < 4))
        calls.append(raw)
        return raw.reshape(-1)

    model.intrinsic.compute = compute
    rec = _Rollouts()
    model.learn(2 * n_steps * n_envs, callback=rec)
    assert len(calls) == 2
    ret, returns, std = np.zeros(n_envs), [], []
    for raw in calls:
        for r in raw:
            ret = 0.9 * ret + r
            returns.append(ret.copy())
        all_r = np.array(returns).reshape(-1)
        # RunningMeanStd over every return so far, from its epsilon prior (count 1e-4)
        var = (1e-4 * 1.0 + len(all_r) * all_r.var() + all_r.mean() ** 2 * 1e-4) / (
            1e-4 + len(all_r)
        )
        std.append(np.sqrt(var + 1e-8))
    for raw, s, r in zip(calls, std, rec.seen, strict=True):
        np.testing.assert_allclose(r["rewards_int"], raw / s, rtol=1e-5)


def _one_rollout_without_training(model: IntrinsicPPO) -> None:
    train = model.train
    model.train = lambda: None  # collect only
    model.learn(model.n_steps * model.n_envs)
    model.train = train


@pytest.mark.parametrize("max_grad_norm", [1e6, 0.05])
def test_one_ppo_update_is_the_gradient_step_of_the_two_head_loss(max_grad_norm: float) -> None:
    """With SGD and one full-batch minibatch, the update is -lr x the (norm-clipped) gradient
    of PPO's loss: the clipped surrogate on normalised advantages, the entropy bonus, and
    vf_coef x (MSE of V_ext on the extrinsic returns + MSE of V_int on the intrinsic ones)."""
    lr, clip, ent, vf = 1e-2, 0.2, 0.05, 0.7
    model = _agent(
        learning_rate=lr,
        clip_range=clip,
        ent_coef=ent,
        vf_coef=vf,
        max_grad_norm=max_grad_norm,
        policy_kwargs={"net_arch": [16], "optimizer_class": torch.optim.SGD},
    )
    _one_rollout_without_training(model)
    buf = model.rollout_buffer
    rng = np.random.default_rng(0)
    buf.log_probs += rng.uniform(-0.5, 0.5, buf.log_probs.shape).astype(np.float32)  # ratios != 1
    (data,) = list(buf.get(None))
    policy = model.policy
    policy.set_training_mode(True)
    values, log_prob, entropy = policy.evaluate_actions(data.observations, data.actions)
    adv = data.advantages
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = torch.exp(log_prob - data.old_log_prob)
    assert ((ratio - 1).abs() > clip).any() and ((ratio - 1).abs() < clip).any()
    surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip))
    v_loss = F.mse_loss(values[:, 0], data.returns[:, 0]) + F.mse_loss(
        values[:, 1], data.returns[:, 1]
    )
    loss = -surrogate.mean() - ent * entropy.mean() + vf * v_loss
    params = [p for p in policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    scale = min(1.0, max_grad_norm / (float(norm) + 1e-6))
    if max_grad_norm < 1:
        assert scale < 1  # the clipping case clips
    expected = [p.detach() - lr * scale * g for p, g in zip(params, grads, strict=True)]
    model.train()
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-4, atol=1e-6)


def test_the_predictor_trains_and_the_target_does_not() -> None:
    model = _agent()
    before = {k: v.clone() for k, v in model.intrinsic.state_dict().items()}
    model.learn(2 * 8 * 3)
    after = model.intrinsic.state_dict()
    for k in before:
        if k.startswith("target."):
            assert torch.equal(before[k], after[k]), k
    moved = [
        k for k in before if k.startswith("predictor.") and not torch.equal(before[k], after[k])
    ]
    assert len(moved) == len([k for k in before if k.startswith("predictor.")])


def test_a_saved_agent_keeps_the_predictors_optimiser_state(tmp_path: Path) -> None:
    """A loaded (or resumed) agent continues Adam's moments instead of restarting them."""
    model = _agent()
    model.learn(8 * 3)
    model.save(tmp_path / "m.zip")
    loaded = IntrinsicPPO.load(tmp_path / "m.zip", env=model.env)
    a = model.intrinsic.optimizer.state_dict()["state"]
    b = loaded.intrinsic.optimizer.state_dict()["state"]
    assert a and a.keys() == b.keys()
    for i in a:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(a[i][name]), torch.as_tensor(b[i][name]))
