"""Sweeps: per-job status, the end-of-sweep failure report, and seed aggregation.

A sweep is Hydra's multirun: ``python -m rndx.train -m env=agv_warehouse
agent=ppo,ppo_rnd,ppo_rdd seed=0,1,2``; the launcher (joblib by default, ``hydra/launcher=ray``,
``hydra/launcher=submitit_slurm``) decides where each job runs. Each job writes its own run dir
under ``multirun/<time>/``; this module adds

- :class:`JobStatusCallback` (a Hydra callback, set in ``configs/train.yaml``): every job writes
  ``status.json`` (COMPLETED or FAILED, the error and its traceback) into its run dir;
- :func:`job_record` and :func:`write_sweep_status`, used by the ``rndx`` sweeper
  (``hydra_plugins/rndx_sweeper``) to write ``sweep_status.json`` and report failed jobs;
- :func:`summarize`: ``python -m rndx.sweep summarize <dir>`` reads the run dirs below ``<dir>``
  (config.yaml, eval.json, .hydra/overrides.yaml) and prints the mean and a 95% confidence
  interval over seeds for each (env, agent, other overrides) group.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rndx.utils.io import atomic_write_json, atomic_write_text

STATUS_FILE = "status.json"
SWEEP_STATUS_FILE = "sweep_status.json"
SUMMARY_FILE = "summary.json"
SUMMARY_TABLE_FILE = "summary.md"
METRICS = ("success_rate", "mean_return")
# Overrides that are not a run's variant: the group's env and agent (columns of their own), the
# seed (varies inside a group) and where the run was written.
_NOT_VARIANT = ("env", "agent", "seed", "run_dir", "resume")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _job_failure(job_return: JobReturn) -> BaseException | None:
    # JobReturn.return_value re-raises a failed job's exception; read the stored value instead.
    if job_return.status == JobStatus.COMPLETED:
        return None
    value = job_return._return_value
    return value if isinstance(value, BaseException) else RuntimeError(str(value))


class JobStatusCallback(Callback):
    """Write ``<run dir>/status.json`` when a job ends, so a failure is recorded with its cause.

    Runs inside the job's process (local, Ray worker or SLURM node), where the exception still
    has its traceback; the sweeper only sees the pickled exception.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.runtime.output_dir))
        exc = _job_failure(job_return)
        record: dict[str, Any] = {
            "status": job_return.status.name,
            "overrides": list(job_return.overrides or []),
            "error": None if exc is None else _error_text(exc),
            "traceback": None
            if exc is None
            else "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        }
        atomic_write_json(run_dir / STATUS_FILE, record)


def job_record(job_return: JobReturn) -> dict[str, Any]:
    """One job of a sweep as a JSON-able dict: number, overrides, run dir, status, error."""
    hydra_cfg = job_return.hydra_cfg
    exc = _job_failure(job_return)
    return {
        "job": None if hydra_cfg is None else int(hydra_cfg.hydra.job.num),
        "overrides": list(job_return.overrides or []),
        "run_dir": None if hydra_cfg is None else str(hydra_cfg.hydra.runtime.output_dir),
        "status": job_return.status.name,
        "error": None if exc is None else _error_text(exc),
    }


def launcher_error_records(
    batch: Sequence[Sequence[str]],
    first_job: int,
    exc: BaseException,
    sweep_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Records for a batch whose launcher raised (a killed worker, a lost node): no job
    returned, so each job's own run dir is read where it can be found.

    Job ``k`` runs in ``<sweep_dir>/<k>__...`` (``hydra.sweep.subdir`` starts with the job
    number). A job that ended wrote its ``status.json`` there (COMPLETED or FAILED, kept as
    the job's record); one that started but did not end gets LAUNCHER_ERROR with its run dir
    (resume it); one with no dir, LAUNCHER_ERROR without one.
    """
    records = []
    for i, overrides in enumerate(batch):
        job = first_job + i
        dirs = sorted(Path(sweep_dir).glob(f"{job}__*")) if sweep_dir is not None else []
        run_dir = dirs[0] if len(dirs) == 1 and dirs[0].is_dir() else None
        record: dict[str, Any] = {
            "job": job,
            "overrides": list(overrides),
            "run_dir": None if run_dir is None else str(run_dir),
            "status": "LAUNCHER_ERROR",
            "error": _error_text(exc),
        }
        status = _read_status(run_dir)
        if status is not None:  # the job ended before its launcher failed
            record.update(status=status["status"], error=status.get("error"))
        records.append(record)
    return records


def _read_status(run_dir: Path | None) -> dict[str, Any] | None:
    """A job's ``status.json``, or None if it has none (or an unreadable one)."""
    if run_dir is None:
        return None
    try:
        status = _read_json(run_dir / STATUS_FILE)
    except (OSError, ValueError):
        return None
    return status if status is not None and "status" in status else None


def compose_error_record(overrides: Sequence[str], exc: BaseException) -> dict[str, Any]:
    """Record for a job whose config does not compose: FAILED, never launched.

    It has no job number (the launcher numbers the jobs it runs) and no run dir. The error
    names the combination, which Hydra's message does not, and keeps the causes Hydra chains
    on (``Could not override 'agent.intrinsic.int_coef'`` is caused by ``Key 'intrinsic' is
    not in struct``).
    """
    causes = [_error_text(exc)]
    cause = exc.__cause__
    while cause is not None and len(causes) < 5:
        causes.append(_error_text(cause))
        cause = cause.__cause__
    return {
        "job": None,
        "overrides": list(overrides),
        "run_dir": None,
        "status": "FAILED",
        "error": f"the config of [{' '.join(overrides)}] does not compose: "
        + "\ncaused by ".join(causes),
    }


def format_sweep_report(sweep_dir: str | Path, records: Sequence[dict[str, Any]]) -> str:
    """Human-readable summary: how many jobs completed, and each failed job with its error."""
    failed = [r for r in records if r["status"] != "COMPLETED"]
    lines = [
        f"sweep {sweep_dir}: {len(records) - len(failed)} of {len(records)} jobs completed, "
        f"{len(failed)} failed"
    ]
    for r in failed:
        if r["job"] is None:  # not launched; its error names the combination
            lines.append(f"  {r['status']} (not launched): {r['error']}")
        else:
            lines.append(
                f"  {r['status']} job {r['job']} [{' '.join(r['overrides'])}]: {r['error']}"
            )
        if r["run_dir"] is None:
            continue
        if r["status"] == "LAUNCHER_ERROR":  # started, never ended: its checkpoint is there
            lines.append(f"    continue it: python -m rndx.train resume={r['run_dir']}")
        else:
            lines.append(f"    traceback: {Path(r['run_dir']) / STATUS_FILE}")
    return "\n".join(lines)


def write_sweep_status(sweep_dir: str | Path, records: Sequence[dict[str, Any]]) -> str:
    """Write ``<sweep_dir>/sweep_status.json``, print the report and return it."""
    report = format_sweep_report(sweep_dir, records)
    completed = sum(r["status"] == "COMPLETED" for r in records)
    atomic_write_json(
        Path(sweep_dir) / SWEEP_STATUS_FILE,
        {"jobs": list(records), "completed": completed, "failed": len(records) - completed},
    )
    print(report, flush=True)
    return report


# --- aggregation over seeds -------------------------------------------------------------------


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its two-sided 95% Student-t confidence interval.

    Seeds are few (3-10), so the t quantile, not the normal 1.96, sets the width. One value
    has no spread estimate: the half-width is None then.

    :raises ValueError: on an empty sequence.
    """
    if len(values) == 0:
        raise ValueError("mean_ci95 needs at least one value, got none")
    from scipy import stats

    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, float(stats.t.ppf(0.975, n - 1) * math.sqrt(var / n))


def find_run_dirs(root: str | Path) -> list[Path]:
    """Run dirs at or below ``root``: folders with the ``config.yaml`` that rndx.train writes.

    Hydra's own ``.hydra/config.yaml`` copies are skipped.
    """
    base = Path(root)
    return sorted(
        p.parent for p in base.rglob("config.yaml") if ".hydra" not in p.relative_to(base).parts
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else None


def _overrides(run_dir: Path) -> list[str]:
    """The run's command-line overrides other than env, agent, seed and its dir ([] if none)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    overrides = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(overrides, list)
    return sorted(
        str(o) for o in overrides if str(o).partition("=")[0].lstrip("+~") not in _NOT_VARIANT
    )


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A run dir's group key, seed, eval result and status (COMPLETED, FAILED or INCOMPLETE)."""
    run = Path(run_dir)
    cfg = OmegaConf.load(run / "config.yaml")
    assert isinstance(cfg, DictConfig)
    result = _read_json(run / "eval.json")
    status_rec = _read_json(run / STATUS_FILE) or {}
    if result is not None:
        status, error = "COMPLETED", None
    elif status_rec.get("status") == "FAILED":
        status, error = "FAILED", status_rec.get("error")
    else:
        status, error = "INCOMPLETE", "no eval.json (still running, or killed)"
    return {
        "run_dir": str(run),
        "env": str(OmegaConf.select(cfg, "env.name", default="?")),
        "agent": str(OmegaConf.select(cfg, "agent.name", default="?")),
        "overrides": _overrides(run),
        "seed": OmegaConf.select(cfg, "seed", default=None),
        "status": status,
        "error": error,
        "eval": result,
    }


def common_overrides(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Overrides every run shares (e.g. the sweep's ``experiment=...``).

    Every run counts, completed or not: when the only ``agent.ppo.gamma=1.5`` run fails, the
    completed runs all have ``agent.ppo.gamma=0.99``, but gamma was swept, not common.
    """
    sets = [set(r["overrides"]) for r in runs]
    return sorted(set.intersection(*sets)) if sets else []


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group completed runs by (env, agent, variant); mean and 95% CI of each metric over seeds.

    The variant is a run's overrides less those every run shares, so runs that differ in, say,
    ``agent.ppo.learning_rate`` are separate rows. A metric some run lacks (``success_rate`` is
    None for envs without ``is_success``) is aggregated over the runs that have it; ``n``
    counts each metric's runs.
    """
    common = set(common_overrides(runs))
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        if run["status"] == "COMPLETED":
            variant = " ".join(o for o in run["overrides"] if o not in common)
            groups.setdefault((run["env"], run["agent"], variant), []).append(run)
    rows = []
    for (env, agent, variant), members in sorted(groups.items()):
        row: dict[str, Any] = {
            "env": env,
            "agent": agent,
            "variant": variant,
            "seeds": sorted(m["seed"] for m in members),
        }
        for metric in METRICS:
            values = [
                float(m["eval"][metric]) for m in members if m["eval"].get(metric) is not None
            ]
            if values:
                mean, half = mean_ci95(values)
                row[metric] = {"mean": mean, "ci95": half, "n": len(values)}
            else:
                row[metric] = None
        rows.append(row)
    return rows


def _cell(stat: dict[str, Any] | None) -> str:
    if stat is None:
        return "n/a"
    if stat["ci95"] is None:
        return f"{stat['mean']:.3g} (1 seed, no CI)"
    return f"{stat['mean']:.3g} ± {stat['ci95']:.2g}"


def format_summary(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]]) -> str:
    """Markdown table of the groups, then one line per run that did not complete."""
    common = common_overrides(runs)
    lines = [f"overrides in every run: {' '.join(common)}", ""] if common else []
    lines += [
        "| env | agent | overrides | seeds | success_rate (mean ± 95% CI) | "
        "mean_return (mean ± 95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        seeds = ",".join(str(s) for s in row["seeds"])
        lines.append(
            f"| {row['env']} | {row['agent']} | {row['variant'] or '-'} | {seeds} | "
            f"{_cell(row['success_rate'])} | {_cell(row['mean_return'])} |"
        )
    bad = [r for r in runs if r["status"] != "COMPLETED"]
    if bad:
        lines.append("")
        lines.append(f"{len(bad)} of {len(runs)} runs left out:")
        lines.extend(f"  {r['status']} {r['run_dir']}: {r['error']}" for r in bad)
    return "\n".join(lines)


def summarize(root: str | Path) -> dict[str, Any]:
    """Aggregate the run dirs below ``root``; write ``summary.json`` and ``summary.md`` there.

    :raises FileNotFoundError: if ``root`` is missing or holds no run dir.
    :return: ``{"groups": rows, "runs": per-run records, "table": markdown}``.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"sweep dir {str(base)!r} does not exist")
    run_dirs = find_run_dirs(base)
    if not run_dirs:
        raise FileNotFoundError(
            f"no run dirs under {str(base)!r} (expected folders with the config.yaml "
            "that rndx.train writes, e.g. multirun/<time>/<job>/)"
        )
    runs = [read_run(d) for d in run_dirs]
    rows = aggregate(runs)
    table = format_summary(rows, runs)
    atomic_write_json(
        base / SUMMARY_FILE,
        {"groups": rows, "common_overrides": common_overrides(runs), "runs": runs},
    )
    atomic_write_text(base / SUMMARY_TABLE_FILE, table + "\n")
    return {"groups": rows, "runs": runs, "table": table}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m rndx.sweep summarize <dir>``; errors print one line and return 2."""
    parser = argparse.ArgumentParser(
        prog="python -m rndx.sweep", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_sum = sub.add_parser("summarize", help="mean and 95%% CI over seeds of a sweep's runs")
    p_sum.add_argument("dir", help="a sweep dir (multirun/<time>) or any folder of run dirs")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = summarize(args.dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out["table"])
    print(f"wrote {Path(args.dir) / SUMMARY_FILE} and {Path(args.dir) / SUMMARY_TABLE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
