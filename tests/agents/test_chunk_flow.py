"""The chunk policy: shapes, seeded sampling, BC loss, embedding size, receding horizon,
save/load, bad demos, and demos -> train -> evaluate end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir

from rndx.agents import load_agent
from rndx.agents.chunk_flow import (
    ChunkFlowPolicy,
    behaviour_clone,
    chunk_targets,
    from_demos,
)
from rndx.demos import Demos, load_demos, record
from rndx.evaluate import evaluate_run, load_model_file
from rndx.paths import config_dir
from rndx.train import train

ENV_ID = "rndx/AGVWarehouse-v0"
OBS = spaces.Box(-1.0, 1.0, (37,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)
SMALL = {"encoder_hidden": [32], "velocity_hidden": [64, 64]}


@pytest.fixture(scope="module")
def demos() -> Demos:
    """Ten expert episodes on the small layout (a second or two)."""
    return record(ENV_ID, 10, seed=0, env_kwargs={"layout": "small"})


@pytest.fixture(scope="module")
def demos_file(demos: Demos, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demos.save(tmp_path_factory.mktemp("demos") / "d.npz")


def _policy(**kwargs) -> ChunkFlowPolicy:
    return ChunkFlowPolicy(OBS, ACT, **{**SMALL, **kwargs})


@pytest.mark.parametrize(("b", "h"), [(1, 16), (64, 16), (5, 4)])
def test_chunk_shapes(b: int, h: int) -> None:
    policy = _policy(horizon=h, execute=min(8, h))
    obs = OBS.sample()
    chunks = policy.sample_chunks(obs, b)
    assert chunks.shape == (b, h, 2)
    assert np.all(np.abs(chunks) <= 1.0)
    assert policy.sample_chunks(np.stack([obs] * 3), b).shape == (3, b, h, 2)


def test_sampling_is_deterministic_with_a_seed() -> None:
    policy = _policy()
    obs = OBS.sample()
    a, b = policy.sample_chunks(obs, 8, seed=3), policy.sample_chunks(obs, 8, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, policy.sample_chunks(obs, 8, seed=4))
    # the 8 samples of one call differ from each other (independent noise)
    assert not np.allclose(a[0], a[1])
    # zero-noise sampling needs no seed
    z1 = policy.sample_chunks(obs, 2, deterministic=True)
    np.testing.assert_array_equal(z1, policy.sample_chunks(obs, 2, deterministic=True))
    np.testing.assert_array_equal(z1[0], z1[1])


def test_embedding_has_the_documented_size() -> None:
    policy = ChunkFlowPolicy(OBS, ACT)  # the defaults: 64, as configs/agent/chunk_flow.yaml
    assert policy.embed(OBS.sample()).shape == (64,)
    assert policy.embed(np.stack([OBS.sample()] * 4)).shape == (4, 64)
    assert _policy(embedding_dim=24).embed(OBS.sample()).shape == (24,)


def test_chunk_targets_pad_with_the_last_action_of_the_episode() -> None:
    actions = np.arange(10, dtype=np.float32).reshape(5, 2)  # episodes [0, 1, 2] and [3, 4]
    t = chunk_targets(actions, np.array([0, 0, 0, 1, 1]), 4)
    assert t.shape == (5, 4, 2)
    np.testing.assert_array_equal(t[1, :, 0], [2, 4, 4, 4])
    np.testing.assert_array_equal(t[3, :, 0], [6, 8, 8, 8])
    np.testing.assert_array_equal(t[4, :, 0], [8, 8, 8, 8])


def test_bc_loss_falls(demos: Demos) -> None:
    policy = from_demos(demos, OBS, ACT, seed=0, **SMALL)
    losses = behaviour_clone(policy, demos, steps=300, batch_size=128, log_every=50)
    assert len(losses) == 6
    assert losses[-1] < 0.6 * losses[0], losses
    assert policy.num_timesteps == 300


def test_predict_replans_every_k_steps_and_at_episode_starts() -> None:
    policy = _policy(horizon=6, execute=3)
    calls: list[int] = []
    inner = policy._sample

    def counting(obs_n, *args):
        calls.append(obs_n.shape[0])
        return inner(obs_n, *args)

    policy._sample = counting  # type: ignore[method-assign]
    obs = np.stack([OBS.sample(), OBS.sample()])
    first, _ = policy.predict(obs, deterministic=True)
    assert first.shape == (2, 2) and calls == [2]
    policy.predict(obs, episode_start=np.array([False, False]))
    policy.predict(obs)
    assert calls == [2]  # 3 actions of the first chunk executed, no replan yet
    policy.predict(obs, episode_start=np.array([False, True]))
    assert calls == [2, 2]  # k reached for both
    policy.predict(obs, episode_start=np.array([True, False]))
    assert calls == [2, 2, 1]  # env 0 restarted: only it replans
    # deterministic predict = first action of the zero-noise chunk
    fresh = _policy(horizon=6, execute=3)
    act, _ = fresh.predict(obs[0], deterministic=True)
    np.testing.assert_allclose(act, fresh.sample_chunks(obs[0], 1, deterministic=True)[0, 0])


def test_save_load_round_trip_and_bad_files(tmp_path: Path) -> None:
    policy = _policy(horizon=8, execute=4, flow_steps=3)
    path = policy.save(tmp_path / "model.zip")
    loaded = load_agent("chunk_flow", path)
    assert isinstance(loaded, ChunkFlowPolicy)
    assert (loaded.horizon, loaded.execute, loaded.flow_steps) == (8, 4, 3)
    obs = OBS.sample()
    np.testing.assert_allclose(
        loaded.sample_chunks(obs, 4, seed=1), policy.sample_chunks(obs, 4, seed=1), atol=1e-6
    )
    with pytest.raises(FileNotFoundError, match="not found"):
        ChunkFlowPolicy.load(tmp_path / "nope.zip")
    (tmp_path / "bad.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        ChunkFlowPolicy.load(tmp_path / "bad.zip")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.zip")
    with pytest.raises(ValueError, match="not an rndx chunk_flow checkpoint"):
        ChunkFlowPolicy.load(tmp_path / "other.zip")


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="execute"):
        _policy(horizon=4, execute=5)
    with pytest.raises(ValueError, match="observation of shape"):
        _policy().sample_chunks(np.zeros(5), 2)


# ---------------------------------------------------------------------- demos files
def test_demos_file_layout(demos: Demos, demos_file: Path) -> None:
    with np.load(demos_file) as f:
        n = len(f["obs"])
        assert f["obs"].shape == (n, 37) and f["actions"].shape == (n, 2)
        assert f["episode_start"].dtype == bool and f["episode_start"].sum() == 10
        assert f["success"].shape == (10,) and f["lengths"].sum() == n
        assert str(f["env_id"]) == ENV_ID
        assert json.loads(str(f["env_kwargs"])) == {"layout": "small"}
    assert demos.success_rate >= 0.9


def test_only_successful_episodes_are_kept(demos: Demos, tmp_path: Path) -> None:
    mixed = Demos(
        demos.obs, demos.actions, demos.episode, np.r_[False, demos.success[1:]], ENV_ID, {}, None
    )
    path = mixed.save(tmp_path / "mixed.npz")
    kept = load_demos(path)
    assert kept.n_episodes == mixed.success.sum()
    assert len(kept.obs) == len(demos.obs) - demos.lengths[0]
    assert load_demos(path, successful_only=False).n_episodes == 10
    none = Demos(demos.obs, demos.actions, demos.episode, np.zeros(10, bool), ENV_ID, {}, None)
    with pytest.raises(ValueError, match="no successful episode"):
        load_demos(none.save(tmp_path / "none.npz"))


def test_bad_demos_files_fail_clearly(demos: Demos, demos_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"observations of shape \(37,\).*expects \(40,\)"):
        load_demos(demos_file, ENV_ID, (40,), (2,))
    with pytest.raises(ValueError, match=r"actions of shape \(2,\).*expects \(3,\)"):
        load_demos(demos_file, ENV_ID, (37,), (3,))
    with pytest.raises(ValueError, match="recorded on 'rndx/AGVWarehouse-v0'"):
        load_demos(demos_file, "rndx/AGVPickDrop-v0")
    empty = Demos(
        np.zeros((0, 37), np.float32),
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.int64),
        np.zeros(0, bool),
        ENV_ID,
        {},
        None,
    )
    with pytest.raises(ValueError, match="empty"):
        load_demos(empty.save(tmp_path / "empty.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="corrupt"):
        load_demos(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="rndx.demos"):
        load_demos(tmp_path / "missing.npz")


def test_noisy_recording_keeps_the_clean_actions() -> None:
    clean = record(ENV_ID, 2, seed=5, env_kwargs={"layout": "small"})
    noisy = record(ENV_ID, 2, seed=5, env_kwargs={"layout": "small"}, noise=0.3)
    assert noisy.noise == 0.3 and np.all(np.abs(noisy.actions) <= 1.0)
    # same start states, different (perturbed) trajectories
    np.testing.assert_array_equal(clean.obs[0], noisy.obs[0])
    assert not np.array_equal(clean.obs[:50], noisy.obs[:50])
    with pytest.raises(ValueError, match="noise"):
        record(ENV_ID, 1, noise=-1.0)


def test_demos_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rndx.demos import main

    out = tmp_path / "cli.npz"
    assert main(["episodes=2", "env.max_episode_steps=300", f"out={out}"]) == 0
    assert load_demos(out, successful_only=False).n_episodes == 2
    assert main(["episodes=0", f"out={out}"]) == 2
    assert "episodes must be >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------------- end to end
def _cfg(run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                "agent=chunk_flow",
                f"run_dir={run_dir}",
                "n_envs=1",
                "progress_bar=false",
                "eval.episodes=4",
                "agent.bc.steps=200",
                "agent.bc.batch_size=128",
                "agent.policy.encoder_hidden=[64]",
                "agent.policy.velocity_hidden=[128,128]",
                *overrides,
            ],
        )


def test_train_rejects_bad_demos_before_training(demos: Demos, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="demos=<file.npz>"):
        train(_cfg(tmp_path / "r0"))
    wrong = Demos(
        np.zeros((5, 40), np.float32),
        np.zeros((5, 2), np.float32),
        np.zeros(5, np.int64),
        np.ones(1, bool),
        ENV_ID,
        {},
        None,
    )
    path = wrong.save(tmp_path / "wrong.npz")
    with pytest.raises(ValueError, match="observations of shape"):
        train(_cfg(tmp_path / "r1", f"demos={path}"))
    assert not (tmp_path / "r1" / "tb").exists()  # nothing trained


def test_demos_train_evaluate_end_to_end(
    demos_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train(_cfg(tmp_path / "run", f"demos={demos_file}"))
    for name in ("model.zip", "config.yaml", "eval.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").rglob("events.out.tfevents.*"))
    # it logs its losses, no env episodes: the summary offers no learning-curve report
    out = capsys.readouterr().out
    assert "tensorboard --logdir" in out and "rndx.report" not in out
    from rndx.report import main as report_main

    assert report_main([str(run), f"out={tmp_path / 'rep'}"]) == 2
    assert "no run to report" in capsys.readouterr().err
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 4 and 0.0 <= result["success_rate"] <= 1.0
    model = load_model_file("chunk_flow", run / "model.zip")
    assert model.num_timesteps == 200
    again = evaluate_run(run, episodes=2, seed=7)
    assert again["episodes"] == 2 and (run / "eval_7.json").is_file()

    # a trained run can be recorded like the expert (`python -m rndx.demos run=<dir>`)
    from rndx.demos import main

    out = tmp_path / "from_run.npz"
    assert main([f"run={run}", "episodes=2", f"out={out}"]) == 0
    recorded = load_demos(out, ENV_ID, (37,), (2,), successful_only=False)
    assert recorded.n_episodes == 2 and recorded.source == "chunk_flow"


def test_train_warns_when_the_demos_were_recorded_on_other_env_options(
    demos_file: Path, tmp_path: Path
) -> None:
    # the demos come from the default (small) layout; cloning for the hard one is allowed but
    # named, with both values
    cfg = _cfg(tmp_path / "run", f"demos={demos_file}", "env.kwargs.layout=hard")
    cfg.agent.bc.steps = 2
    cfg.eval.episodes = 1
    cfg.video.enabled = False
    with pytest.warns(UserWarning, match=r"layout: 'small' recorded, 'hard' in this run"):
        train(cfg)
