"""Every config option composes; typos fail at compose time with a helpful message."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

import rndx.config  # noqa: F401  (registers the rndx.first resolver used by hydra.run.dir)
from rndx.agents import known_algos
from rndx.paths import config_dir, layouts_dir

GROUPS = ("env", "agent", "experiment")
REPO = Path(__file__).resolve().parents[1]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


@pytest.fixture(scope="module")
def hydra_ctx() -> Iterator[None]:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield


def _compose(overrides: list[str], hydra_cfg: bool = False) -> DictConfig:
    return compose("train", overrides=overrides, return_hydra_config=hydra_cfg)


def test_config_dir_is_the_repo_configs() -> None:
    assert (config_dir() / "train.yaml").is_file()
    assert layouts_dir() == config_dir() / "layouts"


def test_an_installed_wheel_uses_the_configs_inside_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel carries the configs in rndx/configs (pyproject's force-include); a checkout keeps
    them beside the package. A wheel must not look for a repository root it does not have."""
    import rndx.paths

    package = tmp_path / "site-packages" / "rndx"
    package.mkdir(parents=True)
    monkeypatch.setattr(rndx.paths, "_PACKAGE_DIR", package)
    assert config_dir() == tmp_path / "site-packages" / "configs"  # a checkout's layout
    (package / "configs").mkdir()
    assert config_dir() == package / "configs"
    assert layouts_dir() == package / "configs" / "layouts"


def test_default_composes(hydra_ctx: None) -> None:
    cfg = _compose([])
    OmegaConf.resolve(cfg)
    assert cfg.env.name == "agv_warehouse"
    assert cfg.agent.algo in known_algos()
    assert cfg.run_dir is None and cfg.resume is None


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)], ids=lambda x: str(x)
)
def test_every_option_composes(hydra_ctx: None, group: str, option: str) -> None:
    if (group, option) == ("env", "gym"):  # any Gymnasium id: the user must name one
        with pytest.raises(MissingMandatoryValue):
            _ = _compose(["env=gym"]).env.id
        cfg = _compose(["env=gym", "env.id=Pendulum-v1"])
        assert cfg.env.id == "Pendulum-v1" and cfg.env.max_episode_steps is None
        return
    cfg = _compose([f"{group}={option}"])
    OmegaConf.resolve(cfg)
    if group == "env":
        assert cfg.env.name == option and cfg.env.id.startswith("rndx/")
        assert isinstance(cfg.env.max_episode_steps, int)
    if group == "agent":
        assert cfg.agent.name == option
        assert cfg.agent.algo in known_algos()
        if cfg.agent.algo == "chunk_flow":  # imitation: policy and behaviour-cloning settings
            assert {"policy", "bc"} <= set(cfg.agent) and cfg.demos is None
        else:
            assert "ppo" in cfg.agent  # shared PPO settings; intrinsic agents add intrinsic:


def test_the_documented_defaults(hydra_ctx: None) -> None:
    """What train.yaml and the README promise: CPU unless asked, evaluation on deterministic
    episodes of seed + 1000 (not the training ones), paths relative to where the command runs
    (Hydra does not change into the run dir), and the quickstart's dense progress reward."""
    from rndx.evaluate import eval_seed

    cfg = _compose(["seed=3"], hydra_cfg=True)
    assert cfg.device == "cpu" and cfg.eval.deterministic is True
    assert cfg.eval.seed is None and eval_seed(cfg) == 1003
    assert cfg.hydra.job.chdir is False
    assert _compose(["experiment=quickstart"]).env.kwargs.reward == "dense"


def test_smoke_experiment_overrides_defaults(hydra_ctx: None) -> None:
    cfg = _compose(["experiment=smoke"])
    assert cfg.total_timesteps == 2048 and cfg.n_envs == 4
    # the smoke run writes a periodic checkpoint before its final one
    assert cfg.checkpoint_every < cfg.total_timesteps
    assert cfg.agent.ppo.n_steps == 64 and cfg.env.max_episode_steps == 50
    assert cfg.eval.episodes == 2 and cfg.progress_bar is False


def test_run_dir_naming(hydra_ctx: None) -> None:
    fresh = _compose(["seed=3"], hydra_cfg=True).hydra.run.dir
    assert Path(fresh).parts[0] == "runs"
    assert Path(fresh).name.startswith("agv_warehouse__ppo_rnd__3__")
    assert _compose(["run_dir=/tmp/r"], hydra_cfg=True).hydra.run.dir == "/tmp/r"
    resumed = _compose(["run_dir=/tmp/r", "resume=/tmp/old"], hydra_cfg=True)
    assert resumed.hydra.run.dir == "/tmp/old"


@pytest.mark.parametrize("override", ["foo=1", "env.kwargs.layot=x", "agent.ppo.lr=1e-3"])
def test_misspelt_key_fails(hydra_ctx: None, override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=f"Could not override '{key}'"):
        _compose([override])


@pytest.mark.parametrize("group", GROUPS)
def test_wrong_group_option_lists_valid_ones(hydra_ctx: None, group: str) -> None:
    with pytest.raises(MissingConfigException) as info:
        _compose([f"{group}=no_such_option"])
    message = str(info.value)
    assert f"Available options in '{group}'" in message
    for option in _options(group):
        assert option in message


@pytest.mark.parametrize(
    ("experiment", "steps"),
    [("null", 1_000_000), ("", 1_000_000), ("smoke", 2048), (None, 200_000)],
)
def test_make_train_experiment_composes(
    hydra_ctx: None, experiment: str | None, steps: int
) -> None:
    """`make train EXPERIMENT=null` (the README's full default recipe) and the others compose."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.pop("EXPERIMENT", None)
    # STAMP= drops the install prerequisite, so -n prints only the train command.
    make = ["make", "-s", "-n", "--no-print-directory", "-C", str(REPO), "train", "STAMP=", "ARGS="]
    if experiment is not None:
        make.append(f"EXPERIMENT={experiment}")
    line = subprocess.run(make, env=env, capture_output=True, text=True, check=True).stdout
    args = shlex.split(line)
    overrides = args[args.index("rndx.train") + 1 :]
    if experiment in ("null", ""):
        assert overrides == ["~experiment"]  # Hydra rejects experiment=null itself
    else:
        assert overrides == [f"experiment={experiment or 'quickstart'}"]
    assert _compose(overrides).total_timesteps == steps
