"""``hydra/sweeper=rndx``: Hydra's basic sweeper that runs every job even when some fail.

Hydra's BasicSweeper re-raises the first failed job's exception as soon as a batch returns,
so later batches never run and the other failures go unreported. This subclass runs all
batches, then writes ``<sweep dir>/sweep_status.json`` (every job: overrides, run dir,
status, error) and prints which jobs failed and why; the sweep then exits with status 1.
The launcher (joblib, Ray, submitit) is untouched: it decides where the jobs run.
"""

# No `from __future__ import annotations`: Hydra execs plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf


@dataclass
class RndxSweeperConf:
    """Same settings as Hydra's ``hydra/sweeper=basic``."""

    _target_: str = "hydra_plugins.rndx_sweeper.rndx_sweeper.RndxSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="rndx", node=RndxSweeperConf, provider="rndx"
)


class RndxSweeper(BasicSweeper):
    """Run every batch; report all failures at the end instead of stopping at the first."""

    def sweep(self, arguments: list[str]) -> Any:
        from rndx.sweep import (
            SWEEP_STATUS_FILE,
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
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            try:
                results = list(self.launcher.launch(batch, initial_job_idx=initial_job_idx))
            except Exception as exc:
                # The launcher itself failed (a worker killed by the OOM killer, a joblib
                # timeout, a lost Ray node): the batch's returns are lost, its jobs' run dirs
                # on disk are not. Record the batch and go on with the next one.
                records += launcher_error_records(batch, initial_job_idx, exc)
            else:
                returns.append(results)
                records += [job_record(r) for r in results]
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
