"""device=auto picks the device; a seed fixes the first rollout and the first update on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from stable_baselines3.common.utils import set_random_seed

from rndx.agents import build_agent
from rndx.config import to_dict
from rndx.paths import config_dir
from rndx.train import resolve_device

TINY = [
    "experiment=smoke",
    "n_envs=2",
    "agent.ppo.n_steps=32",
    "agent.ppo.batch_size=32",
    "agent.ppo.n_epochs=2",
    "env.max_episode_steps=20",
]


def _cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=[*TINY, *overrides])


def _first_update(cfg: DictConfig, device: str = "cpu"):
    """The calls rndx.train makes, then learn for exactly one rollout (one PPO update)."""
    from rndx.envs import make_sb3_vec_env

    set_random_seed(int(cfg.seed))
    env = make_sb3_vec_env(
        str(cfg.env.id),
        int(cfg.n_envs),
        int(cfg.seed),
        cfg.env.max_episode_steps,
        to_dict(cfg.env.get("kwargs")),
    )
    model = build_agent(cfg.agent, env, int(cfg.seed), device, None)
    model.learn(total_timesteps=int(cfg.agent.ppo.n_steps) * int(cfg.n_envs))
    env.close()
    return model


def _rollout(model) -> dict[str, np.ndarray]:
    buf = model.rollout_buffer
    return {k: np.array(getattr(buf, k)) for k in ("observations", "actions", "rewards")}


def _params(model) -> dict[str, torch.Tensor]:
    state = {f"policy.{k}": v for k, v in model.policy.state_dict().items()}
    if getattr(model, "intrinsic", None) is not None:
        state.update({f"intrinsic.{k}": v for k, v in model.intrinsic.state_dict().items()})
    return state


@pytest.mark.parametrize("agent", ["ppo", "ppo_rnd"])
def test_same_seed_same_first_rollout_and_update(agent: str) -> None:
    a = _first_update(_cfg(f"agent={agent}", "seed=3"))
    b = _first_update(_cfg(f"agent={agent}", "seed=3"))
    c = _first_update(_cfg(f"agent={agent}", "seed=4"))
    ra, rb, rc = _rollout(a), _rollout(b), _rollout(c)
    for key in ra:
        np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
    assert not np.array_equal(ra["actions"], rc["actions"])
    pa, pb, pc = _params(a), _params(b), _params(c)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)
    if agent == "ppo_rnd":
        assert any(k.startswith("intrinsic.") for k in pa)


def test_auto_device_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    # SB3 would train on the CPU without a word: an explicit CUDA device must exist
    with pytest.raises(ValueError, match=r"device='cuda' but torch sees no CUDA GPU .*device=cpu"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"  # explicit names pass through unchanged
    with pytest.raises(ValueError, match=r"device='cuda:2' but torch sees 2 CUDA GPU\(s\)"):
        resolve_device("cuda:2")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device 'gpu'; use auto, cpu, cuda"):
        resolve_device("gpu")


def test_auto_device_puts_policy_and_intrinsic_module_on_it() -> None:
    """On this machine auto is the CPU; on a GPU machine the same test checks cuda."""
    device = resolve_device("auto")
    model = _first_update(_cfg("agent=ppo_rnd", "seed=0"), device)
    assert model.device.type == torch.device(device).type
    tensors = [*model.policy.parameters(), *model.intrinsic.parameters()]
    tensors += list(model.intrinsic.buffers())  # normalisers' running statistics
    assert tensors and all(t.device.type == model.device.type for t in tensors)
