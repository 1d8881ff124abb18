"""rndx.report on run dirs written here (a composed config.yaml and TensorBoard scalars, no
training): which runs are seeds of one group and how groups are labelled, what a folder's
runs are, and the curves' common span."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rndx.paths import config_dir
from rndx.report import aggregate, write_report

SUCCESS, RETURN = "rollout/success_rate", "rollout/ep_rew_mean"


def _run(
    root: Path, name: str, overrides: list[str], scalars: dict[str, list[tuple[int, float]]]
) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    with SummaryWriter(str(run / "tb" / "PPO_1")) as writer:
        for tag, points in scalars.items():
            for step, value in points:
                writer.add_scalar(tag, value, step)
    return run


def _rows(md: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        if line.startswith("| agv_warehouse")
    ]


LOGS = {SUCCESS: [(10, 0.5), (20, 1.0)], RETURN: [(10, 1.0), (30, 3.0)]}


def test_where_and_how_a_run_ran_does_not_split_its_group(tmp_path: Path) -> None:
    """Device, evaluation seed and progress bar differ between the two seeds: still one
    group. Its env steps are the furthest any curve got (30, the return's last step)."""
    _run(tmp_path, "a", ["seed=0", "device=cpu", "progress_bar=false"], LOGS)
    _run(tmp_path, "b", ["seed=1", "device=cuda", "eval.seed=5"], LOGS)
    md = write_report([tmp_path], tmp_path / "rep")["table"].read_text()
    assert _rows(md) == [["agv_warehouse / ppo_rnd", "0, 1", "30", "1 ± 0", "3 ± 0", "n/a", "n/a"]]


def test_groups_are_labelled_by_what_tells_them_apart_within_their_env_and_agent(
    tmp_path: Path,
) -> None:
    """Two agents: each its own unlabelled row. Two ppo runs where only one sets an extra
    key: labelled by it, the other one 'unset'."""
    _run(tmp_path, "rnd", ["seed=0"], LOGS)
    _run(tmp_path, "ppo", ["seed=0", "agent=ppo"], LOGS)
    _run(tmp_path, "ppo_x", ["seed=1", "agent=ppo", "+note=x"], LOGS)
    md = write_report([tmp_path], tmp_path / "rep")["table"].read_text()
    assert [r[:2] for r in _rows(md)] == [
        ["agv_warehouse / ppo [note=unset]", "0"],
        ['agv_warehouse / ppo [note="x"]', "1"],
        ["agv_warehouse / ppo_rnd", "0"],
    ]


def test_a_folder_leaves_out_dirs_that_are_no_runs(tmp_path: Path) -> None:
    """A config.yaml without tb/ (a copied config, a run that died at start) is not a run of
    the folder; named on its own it is an error."""
    _run(tmp_path, "good", ["seed=0"], LOGS)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "config.yaml").write_bytes((tmp_path / "good" / "config.yaml").read_bytes())
    md = write_report([tmp_path], tmp_path / "rep")["table"].read_text()
    assert [r[1] for r in _rows(md)] == ["0"]
    with pytest.raises(ValueError, match="has no TensorBoard logs"):
        write_report([stray], tmp_path / "rep2")


def test_curves_are_averaged_over_the_steps_all_seeds_logged() -> None:
    """Seed A logged steps 0..10, seed B 5..15: the mean runs from 5 to 10, where both are
    measured (no seed extrapolated as a flat line)."""
    a = (np.array([0, 10]), np.array([0.0, 1.0]))
    b = (np.array([5, 15]), np.array([1.0, 1.0]))
    steps, mean, lo, hi = aggregate([a, b], points=6)
    np.testing.assert_allclose(steps, [5, 6, 7, 8, 9, 10])
    np.testing.assert_allclose(mean, [0.75, 0.8, 0.85, 0.9, 0.95, 1.0])
    np.testing.assert_allclose(lo, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    np.testing.assert_allclose(hi, 1.0)
