"""``hydra/sweeper=rndx``: Hydra's basic sweeper that runs every job even when some fail.

Hydra's BasicSweeper re-raises the first failed job's exception as soon as a batch returns,
so later batches never run and the other failures go unreported. This subclass runs all
batches, then writes ``<sweep dir>/sweep_status.json`` (every job: overrides, run dir,
status, error) and prints which jobs failed and why; the sweep then exits with status 1.
A job whose config does not compose is one of those failures: it is not launched, and it has
no job number or run dir; the launcher numbers the jobs it runs.
The launcher (joblib, Ray, submitit) is untouched: it decides where the jobs run.

The Ray and submitit launchers come with the ``sweep`` extra. Without it,
``hydra/launcher=ray`` (``ray_aws``, ``submitit_local``, ``submitit_slurm``, and
``ray_cluster``, which builds on ``ray``) still composes, to a placeholder, and the sweep
stops before any job with the install line instead of Hydra's "Could not find
'hydra/launcher/ray'".
"""

# No `from __future__ import annotations`: Hydra execs plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf


@dataclass
class RndxSweeperConf:
    """Same settings as Hydra's ``hydra/sweeper=basic``."""

    _target_: str = "hydra_plugins.rndx_sweeper.rndx_sweeper.RndxSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="rndx", node=RndxSweeperConf, provider="rndx"
)

# hydra/launcher=<name> -> (the plugin module that registers it, its pip package)
EXTRA_LAUNCHERS = {
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
    "ray_aws": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
}
_MISSING_TARGET = "hydra_plugins.rndx_sweeper.rndx_sweeper.MissingLauncher"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_launcher_message(name: str, package: str) -> str:
    return (
        f"hydra/launcher={name} needs the {package} plugin, which is not installed; it comes "
        'with rndx\'s `sweep` extra: pip install "rndx[sweep]" (in a checkout: pip install -e '
        '".[sweep]")'
    )


class LauncherNotInstalled(CompactHydraException):
    """hydra/launcher=<name> of a launcher plugin that is not installed."""


class MissingLauncher(Launcher):
    """Placeholder for a launcher whose plugin is missing: fails with the install line.

    The rndx sweeper stops before instantiating it (see :meth:`RndxSweeper.setup`); this is
    what another sweeper gets."""

    def __init__(self, name: str = "", package: str = "", **_: Any) -> None:
        raise LauncherNotInstalled(missing_launcher_message(name, package))

    def setup(self, **kwargs: Any) -> None:  # pragma: no cover (never instantiated)
        raise NotImplementedError

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:  # pragma: no cover
        raise NotImplementedError


def register_missing_launchers() -> None:
    """Compose hydra/launcher=<name> of a missing scale-out plugin to :class:`MissingLauncher`
    (its install line) instead of Hydra's "Could not find". rndx's apps call this before
    Hydra composes; it is not done at import, since Hydra imports every plugin module for
    every app and the placeholders would replace other apps' own messages."""
    for name, (module, package) in EXTRA_LAUNCHERS.items():
        if not _installed(module):
            ConfigStore.instance().store(
                group="hydra/launcher",
                name=name,
                node={"_target_": _MISSING_TARGET, "name": name, "package": package},
                provider="rndx",
            )


class RndxSweeper(BasicSweeper):
    """Run every batch; report all failures at the end instead of stopping at the first."""

    def setup(self, *, config: DictConfig, **kwargs: Any) -> None:
        launcher = config.hydra.launcher
        if launcher is not None and launcher.get("_target_") == _MISSING_TARGET:
            # the name asked for: ray_cluster composes the ray placeholder
            name = config.hydra.runtime.choices.get("hydra/launcher", launcher.name)
            raise LauncherNotInstalled(missing_launcher_message(str(name), str(launcher.package)))
        super().setup(config=config, **kwargs)

    def sweep(self, arguments: list[str]) -> Any:
        from rndx.sweep import (
            SWEEP_STATUS_FILE,
            compose_error_record,
            job_record,
            launcher_error_records,
            write_sweep_status,
        )

        assert self.config is not None
        assert self.launcher is not None
        assert self.hydra_context is not None
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = self._overrides_parser()
        self.overrides = self.split_arguments(
            parser.parse_overrides(params_conf), self.max_batch_size
        )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns: list[list[JobReturn]] = []
        records: list[dict[str, Any]] = []
        initial_job_idx = 0
        while not self.is_done():
            # Compose each job's config here, one at a time: a combination that does not
            # compose (agent=ppo with an agent.intrinsic.* override, a misspelt env=...) is
            # recorded as FAILED and not launched; the rest of the batch runs.
            batch = []
            for overrides in self.get_job_batch():
                try:
                    self.validate_batch_is_legal([overrides])
                except Exception as exc:
                    records.append(compose_error_record(overrides, exc))
                else:
                    batch.append(overrides)
            if not batch:
                continue
            try:
                results = list(self.launcher.launch(batch, initial_job_idx=initial_job_idx))
            except Exception as exc:
                # The launcher itself failed (a worker killed by the OOM killer, a joblib
                # timeout, a lost Ray node): the batch's returns are lost, its jobs' run dirs
                # on disk are not. Record the batch and go on with the next one.
                records += launcher_error_records(batch, initial_job_idx, exc, sweep_dir)
            else:
                returns.append(results)
                records += [job_record(r) for r in results]
            # the launcher numbers the jobs it runs (and names their run dirs by the number)
            initial_job_idx += len(batch)

        write_sweep_status(sweep_dir, records)
        failed = sum(r["status"] != "COMPLETED" for r in records)
        if failed:
            # SystemExit, not an exception: the report above already says which jobs failed
            # and why, so Hydra need not print the sweeper's own traceback after it.
            raise SystemExit(
                f"{failed} of {len(records)} sweep jobs failed: see {sweep_dir / SWEEP_STATUS_FILE}"
            )
        return returns

    def _overrides_parser(self) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        assert self.hydra_context is not None
        return OverridesParser.create(config_loader=self.hydra_context.config_loader)
