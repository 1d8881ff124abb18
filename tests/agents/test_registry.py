"""build_agent: activation functions by name from a YAML config, and a clear error otherwise."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from torch import nn

from rndx.agents import ACTIVATIONS, build_agent, load_agent, resolve_policy_kwargs
from rndx.envs import make_sb3_vec_env
from rndx.paths import config_dir


def _agent(tmp_path, *overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=smoke",
                "agent.ppo.n_steps=16",
                "agent.ppo.batch_size=32",
                *overrides,
            ],
        )
    env = make_sb3_vec_env(str(cfg.env.id), 2, 0, 20, dict(cfg.env.kwargs))
    return build_agent(cfg.agent, env, 0, "cpu", None)


def _activations(model) -> set[type]:
    return {
        type(m) for m in model.policy.mlp_extractor.modules() if type(m) in ACTIVATIONS.values()
    }


@pytest.mark.parametrize("agent", ["ppo", "ppo_rnd"])
def test_activation_by_name_builds_and_survives_save_load(tmp_path, agent: str) -> None:
    default = _agent(tmp_path, f"agent={agent}")
    assert _activations(default) == {nn.Tanh}  # the config's default is SB3's
    model = _agent(tmp_path, f"agent={agent}", "agent.ppo.policy_kwargs.activation_fn=relu")
    assert _activations(model) == {nn.ReLU}
    model.save(tmp_path / "m.zip")
    algo = "ppo" if agent == "ppo" else "intrinsic_ppo"
    assert _activations(load_agent(algo, tmp_path / "m.zip")) == {nn.ReLU}


def test_unknown_activation_names_the_value_and_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"activation_fn='swish'.*tanh, relu"):
        resolve_policy_kwargs({"policy_kwargs": {"activation_fn": "swish"}})
    # a class, or no policy_kwargs at all, passes through unchanged
    kwargs = {"policy_kwargs": {"activation_fn": nn.ELU}, "n_steps": 8}
    assert resolve_policy_kwargs(kwargs) == kwargs
    assert resolve_policy_kwargs({"n_steps": 8}) == {"n_steps": 8}


@pytest.mark.parametrize("algo", ["ppo", "intrinsic_ppo", "chunk_flow"])
def test_load_agent_names_a_missing_or_corrupt_checkpoint(tmp_path, algo: str) -> None:
    missing = tmp_path / "latest.zip"
    with pytest.raises(FileNotFoundError, match=f"{algo} checkpoint .*latest.zip' not found"):
        load_agent(algo, missing)  # the path as given, not SB3's 'latest.zip.zip'
    missing.write_bytes(b"half a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_agent(algo, missing)
    if algo != "chunk_flow":  # a zip, but not what SB3's save writes: SB3 asserts on it
        import zipfile

        with zipfile.ZipFile(missing, "w") as z:
            z.writestr("hello.txt", "hi")
        with pytest.raises(ValueError, match=f"corrupt or not a saved {algo} agent: No data"):
            load_agent(algo, missing)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.ppo.gamma=1.5", r"agent.ppo.gamma=1.5 must be in \[0, 1\]"),
        ("agent.ppo.gae_lambda=-0.1", r"agent.ppo.gae_lambda=-0.1 must be in \[0, 1\]"),
        ("agent.intrinsic.gamma_int=1.0", r"gamma_int=1.0 must be in \[0, 1\)"),
        ("agent.intrinsic.int_coef=-1", "int_coef=-1 must be >= 0"),
        ("agent.intrinsic.int_coef_end=-0.5", "int_coef_end=-0.5 must be >= 0"),
        ("agent.intrinsic.ext_coef=-2.0", "ext_coef=-2.0 must be >= 0"),
        ("agent.intrinsic.init_steps=-3", "init_steps=-3 must be an integer >= 0"),
        # SB3 takes these silently (a negative max_grad_norm flips the gradient, 0 epochs
        # never update) or fails deep in torch
        ("agent.ppo.max_grad_norm=-1", "agent.ppo.max_grad_norm=-1 must be > 0"),
        ("agent.ppo.n_epochs=0", "agent.ppo.n_epochs=0 must be an integer >= 1"),
        ("agent.ppo.clip_range=-0.2", "agent.ppo.clip_range=-0.2 must be > 0"),
        ("agent.ppo.learning_rate=-1", "agent.ppo.learning_rate=-1 must be > 0"),
        ("agent.ppo.learning_rate=abc", "agent.ppo.learning_rate='abc' must be a finite number"),
        ("agent.ppo.batch_size=0", "agent.ppo.batch_size=0 must be an integer >= 2"),
        ("agent.ppo.ent_coef=nan", "agent.ppo.ent_coef=nan must be a finite number >= 0"),
        ("agent.ppo.gamma=abc", r"agent.ppo.gamma='abc' must be a finite number in \[0, 1\]"),
        ("agent.intrinsic.intrinsic_kwargs.hidden=0", "intrinsic_kwargs: hidden=0 must be an"),
        ("agent.intrinsic.intrinsic_kwargs.learning_rate=-1", "learning_rate=-1 must be > 0"),
    ],
)
def test_bad_discounts_and_coefficients_are_named(tmp_path, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _agent(tmp_path, "agent=ppo_rnd", override)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["agent=ppo", "+agent.ppo.gama=0.9"], r"agent.ppo.gama: not a setting of PPO; allowed"),
        (
            ["agent=ppo_rnd", "+agent.intrinsic.int_coeff=2"],
            r"agent.intrinsic.int_coeff: not a setting of IntrinsicPPO; allowed: \[.*'int_coef'",
        ),
    ],
)
def test_a_key_added_with_plus_that_the_agent_does_not_take_is_named(
    tmp_path, overrides: list[str], message: str
) -> None:
    """A misspelt key the config lacks passes Hydra with a '+' and reached SB3 as 'got an
    unexpected keyword argument' without the config key or what is allowed."""
    with pytest.raises(ValueError, match=message):
        _agent(tmp_path, *overrides)
    _agent(tmp_path, "agent=ppo", "+agent.ppo.use_sde=true")  # a real PPO keyword passes
