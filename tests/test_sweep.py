"""Sweep bookkeeping: per-job status, the failure report, aggregation over seeds, configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

import rndx.config  # noqa: F401  (registers the rndx.first resolver used by hydra.run.dir)
from hydra_plugins.rndx_sweeper.rndx_sweeper import register_missing_launchers
from rndx.paths import config_dir
from rndx.sweep import (
    JobStatusCallback,
    aggregate,
    common_overrides,
    format_sweep_report,
    job_record,
    launcher_error_records,
    main,
    mean_ci95,
    read_run,
    summarize,
    write_sweep_status,
)
from rndx.train import _show_progress


def _fake_run(
    root: Path,
    name: str,
    agent: str,
    seed: int,
    result: dict | None,
    overrides: list[str] | None = None,
    status: dict | None = None,
) -> Path:
    """A run dir as rndx.train and Hydra leave it (config.yaml, eval.json, .hydra/...)."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "env": {"name": "agv_warehouse"}, "agent": {"name": agent}}
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    # Hydra's own copy must not count as a second run dir.
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    ovr = [f"agent={agent}", f"seed={seed}", *(overrides or [])]
    (run / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(ovr)))
    if result is not None:
        (run / "eval.json").write_text(json.dumps(result))
    if status is not None:
        (run / "status.json").write_text(json.dumps(status))
    return run


def _result(success: float | None, ret: float) -> dict:
    return {"success_rate": success, "mean_return": ret, "episodes": 10}


def test_mean_ci95_uses_the_student_t_quantile() -> None:
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    # t(0.975, df=2) = 4.3027; sample std 1; half-width = 4.3027 / sqrt(3)
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / 3**0.5, rel=1e-5)
    assert mean_ci95([5.0]) == (5.0, None)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci95([])


def test_summarize_groups_by_env_agent_and_variant(tmp_path: Path) -> None:
    common = ["experiment=smoke"]
    _fake_run(tmp_path, "0", "ppo", 0, _result(0.0, 1.0), common)
    _fake_run(tmp_path, "1", "ppo", 1, _result(0.5, 3.0), common)
    _fake_run(tmp_path, "2", "ppo_rnd", 0, _result(1.0, 5.0), common)
    _fake_run(tmp_path, "3", "ppo_rnd", 1, _result(1.0, 7.0), common)
    # same agent, another learning rate: a row of its own
    _fake_run(tmp_path, "4", "ppo_rnd", 0, _result(None, 2.0), [*common, "agent.ppo.lr=1"])
    failed = {"status": "FAILED", "error": "ValueError: boom"}
    _fake_run(tmp_path, "5", "ppo_rnd", 2, None, common, status=failed)
    _fake_run(tmp_path, "6", "ppo_rnd", 3, None, common)  # killed: no eval.json, no status

    out = summarize(tmp_path)
    rows = {(r["agent"], r["variant"]): r for r in out["groups"]}
    assert set(rows) == {("ppo", ""), ("ppo_rnd", ""), ("ppo_rnd", "agent.ppo.lr=1")}
    ppo = rows[("ppo", "")]
    assert ppo["seeds"] == [0, 1]
    assert ppo["success_rate"]["mean"] == pytest.approx(0.25)
    assert ppo["mean_return"]["mean"] == pytest.approx(2.0)
    # returns 1 and 3: std sqrt(2), half-width t(0.975, df=1) * sqrt(2) / sqrt(2) = 12.706
    assert ppo["mean_return"]["ci95"] == pytest.approx(12.7062, rel=1e-4)
    # the failed and the unfinished seed are left out of the mean, and listed
    assert rows[("ppo_rnd", "")]["seeds"] == [0, 1]
    lone = rows[("ppo_rnd", "agent.ppo.lr=1")]
    assert lone["success_rate"] is None and lone["mean_return"]["ci95"] is None
    assert "| agent.ppo.lr=1 | 0 | n/a | 2 (1 seed, no CI) |" in out["table"]
    assert "overrides in every run: experiment=smoke" in out["table"]
    assert "FAILED" in out["table"] and "ValueError: boom" in out["table"]
    assert "INCOMPLETE" in out["table"]
    assert len(out["runs"]) == 7  # .hydra/config.yaml copies are not runs
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["groups"] == json.loads(json.dumps(out["groups"]))
    assert (tmp_path / "summary.md").read_text().strip() == out["table"]


def test_aggregate_ignores_incomplete_runs(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "0", "ppo", 0, None)
    assert read_run(run)["status"] == "INCOMPLETE"
    assert aggregate([read_run(run)]) == []


def test_summarize_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["summarize", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["summarize", str(tmp_path)]) == 2
    assert "no run dirs" in capsys.readouterr().err
    _fake_run(tmp_path, "0", "ppo", 0, _result(1.0, 2.0))
    assert main(["summarize", str(tmp_path)]) == 0
    assert "| agv_warehouse | ppo |" in capsys.readouterr().out


def _job_return(tmp_path: Path, num: int, exc: BaseException | None) -> JobReturn:
    ret = JobReturn()
    ret.overrides = [f"seed={num}"]
    ret.hydra_cfg = OmegaConf.create(
        {"hydra": {"job": {"num": num}, "runtime": {"output_dir": str(tmp_path / str(num))}}}
    )
    ret.status = JobStatus.COMPLETED if exc is None else JobStatus.FAILED
    ret.return_value = "done" if exc is None else exc
    return ret


def test_failed_job_is_reported_with_its_error(tmp_path: Path, capsys) -> None:
    try:
        raise ValueError("unknown layout 'nope'")
    except ValueError as e:
        err = e
    records = [
        job_record(_job_return(tmp_path, 0, None)),
        job_record(_job_return(tmp_path, 1, err)),
    ]
    assert records[0]["status"] == "COMPLETED" and records[0]["error"] is None
    assert records[1]["error"] == "ValueError: unknown layout 'nope'"
    report = write_sweep_status(tmp_path, records)
    assert report == format_sweep_report(tmp_path, records)
    assert "1 of 2 jobs completed, 1 failed" in report
    assert "FAILED job 1 [seed=1]: ValueError: unknown layout 'nope'" in report
    # where the failed job's traceback is
    assert records[1]["run_dir"] == str(tmp_path / "1")
    assert f"    traceback: {tmp_path / '1' / 'status.json'}" in report
    assert report in capsys.readouterr().out
    saved = json.loads((tmp_path / "sweep_status.json").read_text())
    assert saved["failed"] == 1 and saved["jobs"][1]["overrides"] == ["seed=1"]


def test_job_status_callback_keeps_the_traceback(tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("out of memory")

    try:
        broken()
    except RuntimeError as e:
        err = e
    ret = _job_return(tmp_path, 3, err)
    cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path / "3")}}})
    JobStatusCallback().on_job_end(config=cfg, job_return=ret)
    status = json.loads((tmp_path / "3" / "status.json").read_text())
    assert status["status"] == "FAILED" and status["error"] == "RuntimeError: out of memory"
    assert "in broken" in status["traceback"]

    JobStatusCallback().on_job_end(config=cfg, job_return=_job_return(tmp_path, 3, None))
    status = json.loads((tmp_path / "3" / "status.json").read_text())
    assert status["status"] == "COMPLETED" and status["traceback"] is None


def _hydra_cfg(*overrides: str):
    register_missing_launchers()  # as rndx.train does before Hydra composes
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_multirun_defaults_joblib_and_the_reporting_sweeper() -> None:
    cfg = _hydra_cfg()
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.rndx_sweeper.rndx_sweeper.RndxSweeper"
    assert cfg.hydra.callbacks.job_status._target_ == "rndx.sweep.JobStatusCallback"
    # each job its own dir, even when two jobs share env, agent and seed
    subdir = OmegaConf.to_container(cfg.hydra.sweep)["subdir"]  # unresolved: no job yet
    assert subdir.startswith("${hydra.job.num}")


@pytest.mark.parametrize(
    ("launcher", "module"),
    [
        ("ray", "hydra_plugins.hydra_ray_launcher"),
        ("ray_cluster", "hydra_plugins.hydra_ray_launcher"),
        ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher"),
    ],
)
def test_scale_out_launchers_compose(launcher: str, module: str) -> None:
    pytest.importorskip(module, reason="pip install 'rndx[sweep]'")
    cfg = _hydra_cfg(f"hydra/launcher={launcher}")
    assert cfg.hydra.launcher._target_.startswith(module)
    if launcher == "ray_cluster":  # hydra issue 2893: Ray refuses it when joining a cluster
        assert cfg.hydra.launcher.ray.init.object_store_memory is None
        # no address, no sweep: never a fresh local instance by mistake
        init = OmegaConf.to_container(cfg.hydra.launcher.ray.init)
        assert init["address"] == "${oc.env:RAY_ADDRESS}"


@pytest.mark.parametrize(
    ("launcher", "module", "package"),
    [
        ("ray", "hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
        ("ray_cluster", "hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
        ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher"),
    ],
)
def test_missing_scale_out_launcher_names_the_sweep_extra(
    launcher: str, module: str, package: str
) -> None:
    """Without the `sweep` extra, hydra/launcher=ray composes to a placeholder and the rndx
    sweeper stops before any job with the install line (not "Could not find ...")."""
    import importlib.util

    from hydra_plugins.rndx_sweeper.rndx_sweeper import LauncherNotInstalled, RndxSweeper

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    cfg = _hydra_cfg(f"hydra/launcher={launcher}")
    assert cfg.hydra.launcher._target_.endswith("rndx_sweeper.MissingLauncher")
    with pytest.raises(LauncherNotInstalled) as info:
        RndxSweeper(max_batch_size=None).setup(config=cfg, hydra_context=None, task_function=None)
    assert str(info.value) == (
        f"hydra/launcher={launcher} needs the {package} plugin, which is not installed; it "
        'comes with rndx\'s `sweep` extra: pip install "rndx[sweep]" (in a checkout: pip install '
        '-e ".[sweep]")'
    )


def test_missing_launcher_from_the_command_line(tmp_path: Path) -> None:
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        pytest.skip("hydra-ray-launcher is installed")
    repo = Path(__file__).resolve().parents[1]
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "rndx.train", "-m", "hydra/launcher=ray", "seed=0,1"]
        + [f"hydra.sweep.dir={sweep_dir}"],
        capture_output=True,
        text=True,
        cwd=repo,
    )
    assert proc.returncode == 1
    assert 'pip install "rndx[sweep]"' in proc.stderr and "Could not find" not in proc.stderr
    assert not sweep_dir.exists()  # stopped before any job


def test_gpu_recipe_asks_for_auto_device_and_a_large_batch() -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=gpu"])
    assert cfg.device == "auto"
    assert cfg.n_envs >= 128
    rollout = cfg.agent.ppo.n_steps * cfg.n_envs
    assert rollout % cfg.agent.ppo.batch_size == 0 and rollout >= 2 * cfg.agent.ppo.batch_size


@pytest.mark.parametrize(("mode", "shown"), [(RunMode.RUN, True), (RunMode.MULTIRUN, False)])
def test_progress_bar_is_off_in_sweep_jobs(mode: RunMode, shown: bool) -> None:
    cfg = _hydra_cfg("progress_bar=true")
    with open_dict(cfg):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)
    try:
        assert _show_progress(cfg) is shown
    finally:
        HydraConfig.instance().cfg = None


def test_launcher_error_marks_every_job_of_the_batch(tmp_path: Path) -> None:
    records = launcher_error_records([["seed=0"], ["seed=1"]], 4, MemoryError("worker killed"))
    assert [(r["job"], r["status"]) for r in records] == [
        (4, "LAUNCHER_ERROR"),
        (5, "LAUNCHER_ERROR"),
    ]
    report = format_sweep_report(tmp_path, records)
    assert "0 of 2 jobs completed, 2 failed" in report
    assert "LAUNCHER_ERROR job 5 [seed=1]: MemoryError: worker killed" in report


def test_launcher_error_keeps_what_each_jobs_run_dir_says(tmp_path: Path) -> None:
    """A killed worker fails the batch, not the jobs that had ended: their status.json is
    their record; a job that started and never ended is named with its dir to resume."""
    done = tmp_path / "4__agv_warehouse__ppo__0"
    done.mkdir()
    (done / "status.json").write_text(json.dumps({"status": "COMPLETED", "error": None}))
    started = tmp_path / "5__agv_warehouse__ppo__1"
    started.mkdir()
    batch = [["seed=0"], ["seed=1"], ["seed=2"]]
    records = launcher_error_records(batch, 4, MemoryError("worker killed"), tmp_path)
    assert [(r["job"], r["status"], r["run_dir"]) for r in records] == [
        (4, "COMPLETED", str(done)),
        (5, "LAUNCHER_ERROR", str(started)),
        (6, "LAUNCHER_ERROR", None),
    ]
    report = format_sweep_report(tmp_path, records)
    assert "1 of 3 jobs completed, 2 failed" in report
    assert f"continue it: python -m rndx.train resume={started}" in report


def test_common_overrides_count_failed_runs(tmp_path: Path) -> None:
    """A swept key stays a variant when a failed run removes all but one of its values."""
    common = ["experiment=smoke"]
    _fake_run(tmp_path, "0", "ppo", 0, _result(1.0, 2.0), [*common, "agent.ppo.gamma=0.99"])
    failed = {"status": "FAILED", "error": "ValueError: gamma must be in [0, 1]"}
    _fake_run(tmp_path, "1", "ppo", 0, None, [*common, "agent.ppo.gamma=1.5"], status=failed)
    out = summarize(tmp_path)
    assert common_overrides(out["runs"]) == ["experiment=smoke"]
    assert "overrides in every run: experiment=smoke\n" in out["table"]
    assert [g["variant"] for g in out["groups"]] == ["agent.ppo.gamma=0.99"]
    assert "| agent.ppo.gamma=0.99 |" in out["table"]
    assert json.loads((tmp_path / "summary.json").read_text())["common_overrides"] == common


class _RecordingLauncher(Launcher):
    """Runs no job: records each batch and returns a COMPLETED JobReturn per job."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[list[str]]]] = []

    def setup(self, **kwargs: Any) -> None:  # pragma: no cover (set by the test)
        pass

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        self.batches.append((initial_job_idx, [list(o) for o in job_overrides]))
        returns = []
        for i, overrides in enumerate(job_overrides):
            ret = JobReturn()
            ret.overrides = list(overrides)
            num = initial_job_idx + i
            ret.hydra_cfg = OmegaConf.create(
                {"hydra": {"job": {"num": num}, "runtime": {"output_dir": f"/runs/{num}"}}}
            )
            ret.status = JobStatus.COMPLETED
            ret.return_value = None
            returns.append(ret)
        return returns


def _sweep(tmp_path: Path, *arguments: str, max_batch_size: int | None = None):
    """Run the rndx sweeper in-process, as `python -m rndx.train -m ...` does, with a launcher
    that records what it is asked to run."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.utils import setup_globals
    from hydra.types import HydraContext

    from hydra_plugins.rndx_sweeper.rndx_sweeper import RndxSweeper

    setup_globals()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir())))
    overrides = [*arguments, f"hydra.sweep.dir={tmp_path}"]
    cfg = loader.load_configuration("train", overrides, run_mode=RunMode.MULTIRUN)
    sweeper = RndxSweeper(max_batch_size=max_batch_size)
    sweeper.config = cfg
    sweeper.hydra_context = HydraContext(config_loader=loader, callbacks=None)
    sweeper.launcher = launcher = _RecordingLauncher()
    task_overrides = OmegaConf.to_container(cfg.hydra.overrides.task)
    try:
        sweeper.sweep(arguments=task_overrides)
    except SystemExit as exc:
        return launcher, str(exc)
    return launcher, None


def test_job_whose_config_does_not_compose_fails_alone(tmp_path: Path, capsys) -> None:
    # agent=ppo has no agent.intrinsic: that job fails, the ppo_rnd ones run
    launcher, exit_msg = _sweep(
        tmp_path,
        "experiment=smoke",
        "agent=ppo,ppo_rnd",
        "agent.intrinsic.int_coef=0.5",
        "seed=0,1",
    )
    assert launcher.batches == [
        (
            0,
            [
                ["experiment=smoke", "agent=ppo_rnd", "agent.intrinsic.int_coef=0.5", f"seed={s}"]
                for s in (0, 1)
            ],
        )
    ]
    assert exit_msg == f"2 of 4 sweep jobs failed: see {tmp_path / 'sweep_status.json'}"
    status = json.loads((tmp_path / "sweep_status.json").read_text())
    assert (status["completed"], status["failed"]) == (2, 2)
    bad = [j for j in status["jobs"] if j["status"] == "FAILED"]
    assert [j["overrides"] for j in bad] == [
        ["experiment=smoke", "agent=ppo", "agent.intrinsic.int_coef=0.5", f"seed={s}"]
        for s in (0, 1)
    ]
    for job in bad:
        assert job["job"] is None and job["run_dir"] is None
        assert f"[{' '.join(job['overrides'])}] does not compose" in job["error"]
        assert "Key 'intrinsic' is not in struct" in job["error"]
    assert [j["job"] for j in status["jobs"] if j["status"] == "COMPLETED"] == [0, 1]
    out = capsys.readouterr().out
    assert "2 of 4 jobs completed, 2 failed" in out
    assert "FAILED (not launched): the config of [experiment=smoke agent=ppo " in out


def test_bad_combination_in_a_later_batch_does_not_stop_the_sweep(tmp_path: Path) -> None:
    launcher, exit_msg = _sweep(
        tmp_path,
        "experiment=smoke",
        "env=agv_warehous,agv_warehouse,agv_warehous",
        "seed=0",
        max_batch_size=1,
    )
    # the good job is the only one launched, numbered 0: the failed ones have no number
    assert launcher.batches == [(0, [["experiment=smoke", "env=agv_warehouse", "seed=0"]])]
    assert exit_msg is not None and exit_msg.startswith("2 of 3 sweep jobs failed")
    jobs = json.loads((tmp_path / "sweep_status.json").read_text())["jobs"]
    assert [(j["job"], j["status"]) for j in jobs] == [(None, "FAILED"), (0, "COMPLETED")] + [
        (None, "FAILED")
    ]
    assert "env=agv_warehous " in jobs[0]["error"] and "agv_warehous" in jobs[2]["error"]


def test_sweep_of_good_jobs_exits_normally(tmp_path: Path) -> None:
    launcher, exit_msg = _sweep(tmp_path, "experiment=smoke", "seed=0,1", max_batch_size=1)
    assert exit_msg is None
    assert [(idx, len(b)) for idx, b in launcher.batches] == [(0, 1), (1, 1)]
    status = json.loads((tmp_path / "sweep_status.json").read_text())
    assert (status["completed"], status["failed"]) == (2, 0)


def test_other_hydra_apps_keep_hydras_own_missing_launcher_message(tmp_path: Path) -> None:
    """Hydra imports rndx's plugin module for every app: its placeholders are registered only
    by rndx's own entry point, so another app's hydra/launcher=ray fails as Hydra says."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        pytest.skip("hydra-ray-launcher is installed")
    (tmp_path / "app.py").write_text(
        "import hydra\n\n"
        "@hydra.main(version_base='1.3', config_path=None)\n"
        "def main(cfg):\n    print('ran')\n\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "app.py", "-m", "hydra/launcher=ray", "+x=1,2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "Could not find 'hydra/launcher/ray'" in proc.stderr and "rndx" not in proc.stderr


def test_runs_of_a_sweep_over_envs_or_of_named_run_dirs_group_by_seed(tmp_path: Path) -> None:
    """env= has its own column and run_dir= names each run's folder: neither makes a variant,
    so the seeds of one (env, agent) are one row."""
    for i, (env, seed) in enumerate([("a", 0), ("a", 1), ("b", 0), ("b", 1)]):
        run = _fake_run(tmp_path, str(i), "ppo", seed, _result(1.0, 2.0 + seed))
        cfg = OmegaConf.load(run / "config.yaml")
        cfg.env.name = env
        (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        ovr = [f"env={env}", "agent=ppo", f"seed={seed}", f"run_dir={run}"]
        (run / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(ovr)))
    rows = summarize(tmp_path)["groups"]
    assert [(r["env"], r["variant"], r["seeds"]) for r in rows] == [
        ("a", "", [0, 1]),
        ("b", "", [0, 1]),
    ]
    assert rows[0]["mean_return"]["mean"] == pytest.approx(2.5)


def test_launcher_error_finds_job_1s_dir_among_jobs_10_to_19(tmp_path: Path) -> None:
    """Job 1's dir is 1__...; 10__..., 11__... are other jobs' (a sweep of 12 or more jobs)."""
    for job in (1, 10, 11):
        (tmp_path / f"{job}__agv_warehouse__ppo__0").mkdir()
    (record,) = launcher_error_records([["seed=0"]], 1, MemoryError("killed"), tmp_path)
    assert record["run_dir"] == str(tmp_path / "1__agv_warehouse__ppo__0")


@pytest.mark.parametrize("text", ["{", '{"error": null}', "[1, 2]"])
def test_launcher_error_with_an_unreadable_status_json_is_a_launcher_error(
    tmp_path: Path, text: str
) -> None:
    """A status.json cut short or not written by rndx is no record of how the job ended."""
    run = tmp_path / "4__agv_warehouse__ppo__0"
    run.mkdir()
    (run / "status.json").write_text(text)
    (record,) = launcher_error_records([["seed=0"]], 4, MemoryError("killed"), tmp_path)
    assert (record["status"], record["run_dir"]) == ("LAUNCHER_ERROR", str(run))
    assert record["error"] == "MemoryError: killed"


def test_a_resumed_run_is_a_seed_of_its_group_and_n_counts_each_metric(tmp_path: Path) -> None:
    """resume=<dir> only says how a run was continued; a metric some seed lacks is averaged
    over the seeds that have it, and n says how many; seeds are listed in order."""
    _fake_run(tmp_path, "a", "ppo", 1, _result(1.0, 2.0))
    _fake_run(tmp_path, "b", "ppo", 0, _result(None, 4.0), [f"resume={tmp_path / 'b'}"])
    _fake_run(tmp_path, "c", "ppo", 2, _result(0.5, 6.0))
    _fake_run(tmp_path, "d", "ppo", 3, None, status={"status": "FAILED", "error": "E: x"})
    out = summarize(tmp_path)
    (row,) = out["groups"]
    assert (row["variant"], row["seeds"]) == ("", [0, 1, 2])
    assert row["success_rate"]["n"] == 2 and row["success_rate"]["mean"] == pytest.approx(0.75)
    assert row["mean_return"]["n"] == 3 and row["mean_return"]["mean"] == pytest.approx(4.0)
    # returns 2, 4, 6: sample std 2, half-width t(0.975, df=2) * 2 / sqrt(3)
    assert row["mean_return"]["ci95"] == pytest.approx(4.302653 * 2 / 3**0.5, rel=1e-5)
    assert "| agv_warehouse | ppo | - | 0,1,2 | 0.75 ± " in out["table"]
    assert "1 of 4 runs left out:" in out["table"]
    assert f"FAILED {tmp_path / 'd'}: E: x" in out["table"]
