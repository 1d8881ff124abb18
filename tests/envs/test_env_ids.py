"""An unknown env id names the closest registered ids, Gymnasium's own included."""

from __future__ import annotations

import sys

import pytest

import rndx  # noqa: F401  (registers the ids)
from rndx.envs import resolve_env_id


@pytest.mark.parametrize(
    ("typo", "match"),
    [
        ("Pendulm-v1", "did you mean 'Pendulum-v1'"),
        ("cartpole-v1", "did you mean 'CartPole-v1'"),
        ("rndx/AGVWarehous-v0", "did you mean 'rndx/AGVWarehouse-v0'"),
    ],
)
def test_unknown_id_suggests_close_matches_from_the_whole_registry(typo: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        resolve_env_id(typo)
    assert "rndx ids:" in str(info.value) and "package:Id" in str(info.value)


def test_nothing_close_gives_no_suggestion() -> None:
    with pytest.raises(ValueError, match="unknown env id") as info:
        resolve_env_id("Xyzzy-v9")
    assert "did you mean" not in str(info.value)


def test_a_module_that_does_not_import_gets_the_hint_that_fits_it(monkeypatch) -> None:
    """Your own module: put it on the path; gymnasium_robotics: the bench extra."""
    with pytest.raises(ValueError, match=r"cannot import 'myenvs_nowhere'.*PYTHONPATH") as info:
        resolve_env_id("myenvs_nowhere:MyEnv-v0")
    assert "rndx[bench]" not in str(info.value)
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # import fails as if missing
    with pytest.raises(ValueError, match=r"pip install 'rndx\[bench\]'"):
        resolve_env_id("gymnasium_robotics:PointMaze_UMaze-v3")
