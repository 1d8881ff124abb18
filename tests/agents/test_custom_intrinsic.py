"""A user's own intrinsic module, named 'package.module:Class', through IntrinsicPPO and the
config: built, trained, saved and loaded (in a fresh process it is imported from its path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from rndx.agents import build_agent, load_agent
from rndx.agents.intrinsic_ppo import IntrinsicPPO
from rndx.envs import make_sb3_vec_env
from rndx.intrinsic import IntrinsicModule, build_intrinsic, intrinsic_class
from rndx.paths import config_dir


class Counts(IntrinsicModule):
    """Count-based bonus 1 / sqrt(1 + N) over a hashed grid: nothing to train (no optimiser)."""

    def __init__(self, input_dim: int, cell: float = 0.5, bins: int = 512, **kwargs) -> None:
        super().__init__(input_dim, **kwargs)
        self.cell, self.bins, self.output_dim = cell, bins, 1
        self.register_buffer("counts", torch.zeros(bins))
        self._make_optimizer()

    def _hash(self, x: torch.Tensor) -> torch.Tensor:
        cells = torch.floor(x / self.cell).long()
        weights = 1000003 ** torch.arange(cells.shape[1], device=x.device)
        return torch.remainder((cells * weights).sum(dim=1), self.bins)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros((len(x), 1), device=x.device)

    def _bonus(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / torch.sqrt(1.0 + self.counts[self._hash(x)])

    def _loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), device=x.device)

    def update_input_stats(self, inputs) -> None:  # noqa: ANN001
        super().update_input_stats(inputs)
        x = self._prepare(inputs)
        self.counts += torch.bincount(self._hash(x), minlength=self.bins).float()


PATH = f"{__name__}:Counts"


def _env():
    return make_sb3_vec_env("rndx/AGVWarehouse-v0", 2, seed=0, max_episode_steps=20)


def test_a_module_path_resolves_and_bad_ones_say_what_is_wrong() -> None:
    assert intrinsic_class(PATH) is Counts
    assert isinstance(build_intrinsic(PATH, 4), Counts)
    with pytest.raises(ValueError, match="package.module:ClassName"):
        build_intrinsic("count", 4)
    with pytest.raises(ValueError, match="cannot import"):
        build_intrinsic("no_such_package_xyz:Counts", 4)
    with pytest.raises(ValueError, match="not an IntrinsicModule"):
        build_intrinsic(f"{__name__}:PATH", 4)
    # an unknown module is named as such, not as a bad intrinsic_kwargs setting
    with pytest.raises(ValueError, match="^intrinsic module 'count'"):
        IntrinsicPPO("MlpPolicy", _env(), intrinsic="count")


@pytest.mark.parametrize("given", [PATH, Counts])
def test_a_module_with_nothing_to_train_learns_saves_and_loads(tmp_path: Path, given) -> None:
    env = _env()
    model = IntrinsicPPO(
        "MlpPolicy", env, intrinsic=given, intrinsic_input="pose", n_steps=16, batch_size=16,
        n_epochs=1, init_steps=3, seed=0,
    )  # fmt: skip
    assert model.intrinsic_kind == PATH  # a class is stored by its import path
    assert model.intrinsic.optimizer is None
    model.learn(32)
    assert float(model.intrinsic.counts.sum()) == 2 * 3 + 32  # init steps + the rollouts'
    model.save(tmp_path / "m.zip")
    loaded = load_agent("intrinsic_ppo", tmp_path / "m.zip", env=env)
    assert isinstance(loaded.intrinsic, Counts) and loaded.intrinsic_kind == PATH
    assert torch.equal(loaded.intrinsic.counts, model.intrinsic.counts)
    x = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(loaded.intrinsic.compute(x), model.intrinsic.compute(x))
    loaded.learn(16, reset_num_timesteps=False)  # and trains on


def test_the_config_names_a_module_by_its_path() -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"agent.intrinsic.intrinsic={PATH}",
                "~agent.intrinsic.intrinsic_kwargs",
                "+agent.intrinsic.intrinsic_kwargs={cell:0.25}",
                "agent.ppo.n_steps=8",
                "agent.ppo.batch_size=16",
            ],
        )
    model = build_agent(cfg.agent, _env(), seed=0, device="cpu", tb_dir=None)
    assert isinstance(model.intrinsic, Counts) and model.intrinsic.cell == 0.25


def test_a_trainable_module_that_forgot_its_optimiser_is_told() -> None:
    class Forgot(IntrinsicModule):
        def __init__(self, input_dim: int, **kwargs) -> None:
            super().__init__(input_dim, **kwargs)
            self.output_dim = 1
            self.net = torch.nn.Linear(input_dim, 1)

        def _target(self, x):  # noqa: ANN001, ANN202
            return torch.zeros((len(x), 1))

        def _loss(self, x, target):  # noqa: ANN001, ANN202
            return ((self.net(x) - target) ** 2).sum(dim=1)

    with pytest.raises(RuntimeError, match="_make_optimizer"):
        Forgot(2).update(np.zeros((4, 2), np.float32))


def test_loading_where_the_module_does_not_import_names_the_module_not_corruption(
    tmp_path: Path,
) -> None:
    model = IntrinsicPPO("MlpPolicy", _env(), intrinsic=PATH, n_steps=16, batch_size=16)
    model.intrinsic_kind = "no_such_package_xyz:Counts"  # as if saved where it imported
    model.save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match="no_such_package_xyz:Counts': cannot import") as info:
        load_agent("intrinsic_ppo", tmp_path / "m.zip")
    assert "corrupt" not in str(info.value)
