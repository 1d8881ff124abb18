"""Hydra/OmegaConf glue: custom resolvers and config helpers shared by the entry points."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

# What a run dir holds once its training has started (rndx.train writes config.yaml first, so
# a run that failed before learning anything, e.g. on a bad env setting, can be run again).
RUN_FILES = ("model.zip", "checkpoints", "tb")


def _first_not_none(*values: Any) -> Any:
    """Return the first value that is not None (oc.select treats an explicit null as a value)."""
    return next((v for v in values if v is not None), None)


def register_resolvers() -> None:
    """Register rndx's resolvers; safe to call more than once."""
    if not OmegaConf.has_resolver("rndx.first"):
        OmegaConf.register_new_resolver("rndx.first", _first_not_none)


def to_dict(node: DictConfig | None) -> dict[str, Any]:
    """Return a resolved plain-dict copy of a config node (None -> {})."""
    if node is None:
        return {}
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def check_new_run_dir(run_dir: str | Path) -> None:
    """Refuse to start a new run in ``run_dir`` when it already holds one: the second run
    would replace the first one's model and checkpoints and add its logs to the first one's.

    :raises FileExistsError: naming what is there, ``resume=`` and a new ``run_dir``.
    """
    run = Path(run_dir)
    found = [name for name in RUN_FILES if (run / name).exists()]
    resumable = (run / "checkpoints" / "latest.zip").is_file() or (run / "model.zip").is_file()
    if found and not resumable:  # killed before its first checkpoint: resume= cannot help
        raise FileExistsError(
            f"run dir {str(run)!r} holds a run that stopped before its first checkpoint "
            f"({', '.join(found)}; no checkpoints/latest.zip to resume from): delete the dir "
            "or train into a new run_dir"
        )
    if found:
        raise FileExistsError(
            f"run dir {str(run)!r} already holds a run ({', '.join(found)}); continue it with "
            f"python -m rndx.train resume={run}, or train into a new run_dir"
        )


class NewRunDirCallback(Callback):
    """Hydra callback (``configs/train.yaml``): ``run_dir=`` naming a dir that holds a run fails
    before Hydra writes ``.hydra/`` and ``status.json`` into it; one line, exit status 2."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("resume") is not None or config.get("run_dir") is None:
            return
        try:
            check_new_run_dir(str(config.run_dir))
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


register_resolvers()
