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


def _hydra_subdir(resume: Any, stamp: str) -> str:
    """Where Hydra writes its files in the run dir: ``.hydra``, or for a resume
    ``.hydra/resume_<stamp>`` (the run's own ``.hydra/overrides.yaml`` says how it was made)."""
    return ".hydra" if resume is None else f".hydra/resume_{stamp}"


def register_resolvers() -> None:
    """Register rndx's resolvers; safe to call more than once."""
    if not OmegaConf.has_resolver("rndx.first"):
        OmegaConf.register_new_resolver("rndx.first", _first_not_none)
    if not OmegaConf.has_resolver("rndx.hydra_subdir"):
        OmegaConf.register_new_resolver("rndx.hydra_subdir", _hydra_subdir)


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
    before Hydra writes ``.hydra/`` and ``status.json`` into it; one line, exit status 2.

    The dir stays locked for the run (``rndx.utils.io.acquire_dir``), so a second command
    started at the same time fails here too instead of writing its ``.hydra/`` over the first's.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from rndx.utils.io import DirInUseError, acquire_dir

        self._locked: str | None = None
        resume = config.get("resume")
        target = resume if resume is not None else config.get("run_dir")
        if target is None or (resume is not None and not Path(str(resume)).is_dir()):
            return  # a missing resume dir is named by the task; none is created here
        try:
            acquire_dir(str(target), "run dir")  # a resume too: Hydra writes into its dir
            self._locked = str(target)
            if resume is None:
                check_new_run_dir(str(target))
        except (FileExistsError, DirInUseError) as exc:
            self.on_run_end(config)
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rndx.utils.io import release_dir

        if getattr(self, "_locked", None) is not None:
            release_dir(self._locked)
            self._locked = None


register_resolvers()
