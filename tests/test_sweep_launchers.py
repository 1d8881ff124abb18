"""Real multiruns of tiny jobs through each launcher: `python -m rndx.train -m ...`.

Slow (each sweep starts several Python processes that import torch and train): run them with
`pytest -m slow tests/test_sweep_launchers.py`. Ray and submitit need `pip install 'rndx[sweep]'`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rndx
from rndx.sweep import summarize

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(rndx.__file__).resolve().parents[1]
TINY = [
    "experiment=smoke",
    "total_timesteps=64",
    "n_envs=2",
    "agent.ppo.n_steps=32",
    "agent.ppo.batch_size=32",
    "agent.ppo.n_epochs=1",
    "eval.episodes=1",
    "env.max_episode_steps=20",
]
RAY_LOCAL = [
    "hydra/launcher=ray",
    # a fresh instance even if a Ray cluster runs on this machine (address null would join it)
    "hydra.launcher.ray.init.address=local",
    "+hydra.launcher.ray.init.num_cpus=2",
    "+hydra.launcher.ray.init.include_dashboard=false",
]


def _multirun(
    sweep_dir: Path, *overrides: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, **(extra_env or {})}
    # this checkout's rndx and hydra_plugins/rndx_sweeper, in the jobs' processes too
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    cmd = [sys.executable, "-m", "rndx.train", "-m", *TINY, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.run(
        [*cmd, *overrides], env=env, cwd=sweep_dir.parent, capture_output=True, text=True
    )


def _assert_2x2(sweep_dir: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in runs] == [
        "0__agv_warehouse__ppo__0",
        "1__agv_warehouse__ppo__1",
        "2__agv_warehouse__ppo_rnd__0",
        "3__agv_warehouse__ppo_rnd__1",
    ]
    for run in runs:
        result = json.loads((run / "eval.json").read_text())
        assert result["episodes"] == 1
        assert (run / "model.zip").is_file()
        assert json.loads((run / "status.json").read_text())["status"] == "COMPLETED"
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert (status["completed"], status["failed"]) == (4, 0)
    groups = summarize(sweep_dir)["groups"]
    assert [(g["agent"], g["seeds"]) for g in groups] == [("ppo", [0, 1]), ("ppo_rnd", [0, 1])]


def test_joblib_2x2_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _multirun(sweep, "agent=ppo,ppo_rnd", "seed=0,1", "hydra.launcher.n_jobs=2")
    assert "Joblib.Parallel" in proc.stdout + proc.stderr  # the default multirun launcher
    _assert_2x2(sweep, proc)


def test_ray_local_2x2_sweep(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install 'rndx[sweep]'")
    sweep = tmp_path / "sweep"
    proc = _multirun(sweep, "agent=ppo,ppo_rnd", "seed=0,1", *RAY_LOCAL)
    assert "Ray Launcher is launching 4 jobs" in proc.stdout + proc.stderr
    _assert_2x2(sweep, proc)


def test_submitit_local_sweep(tmp_path: Path) -> None:
    """The SLURM launcher's local twin: same submitit job packaging, local processes."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'rndx[sweep]'")
    sweep = tmp_path / "sweep"
    proc = _multirun(
        sweep,
        "agent=ppo,ppo_rnd",
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
    )
    assert (sweep / ".submitit").is_dir()
    _assert_2x2(sweep, proc)


def test_broken_job_does_not_stop_the_others(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # job 0 asks for a layout that does not exist; jobs 1 and 2 are fine
    proc = _multirun(
        sweep, "agent=ppo", "env.kwargs.layout=nope,small", "seed=0,1", "hydra.launcher.n_jobs=2"
    )
    assert proc.returncode == 1
    assert "2 of 4 sweep jobs failed" in proc.stderr
    assert "FAILED job 0" in proc.stdout and "unknown layout 'nope'" in proc.stdout
    status = json.loads((sweep / "sweep_status.json").read_text())
    assert (status["completed"], status["failed"]) == (2, 2)
    for job in status["jobs"]:
        run = Path(job["run_dir"])
        if "env.kwargs.layout=nope" in job["overrides"]:
            assert job["status"] == "FAILED" and "unknown layout 'nope'" in job["error"]
            assert not (run / "eval.json").exists()
            assert "Traceback" in json.loads((run / "status.json").read_text())["traceback"]
        else:
            assert job["status"] == "COMPLETED" and (run / "eval.json").is_file()
    out = summarize(sweep)
    assert [g["seeds"] for g in out["groups"]] == [[0, 1]]
    assert out["table"].count("FAILED") == 2


def test_job_whose_config_does_not_compose_is_recorded(tmp_path: Path) -> None:
    """agent=ppo has no agent.intrinsic: that job is FAILED and not launched, ppo_rnd runs."""
    sweep = tmp_path / "sweep"
    proc = _multirun(sweep, "agent=ppo,ppo_rnd", "agent.intrinsic.int_coef=0.5", "seed=0")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 of 2 sweep jobs failed" in proc.stderr
    assert "FAILED (not launched): the config of [" in proc.stdout
    status = json.loads((sweep / "sweep_status.json").read_text())
    bad, good = status["jobs"]
    assert "agent=ppo" in bad["overrides"] and bad["status"] == "FAILED"
    assert bad["run_dir"] is None and "Key 'intrinsic' is not in struct" in bad["error"]
    assert good["status"] == "COMPLETED" and Path(good["run_dir"]).name.startswith("0__")
    assert [g["agent"] for g in summarize(sweep)["groups"]] == ["ppo_rnd"]


def test_launcher_failure_is_recorded(tmp_path: Path) -> None:
    """A launcher that raises (here joblib's timeout; also a worker killed for memory) loses
    its batch's returns: the sweep records each job of it as LAUNCHER_ERROR and exits 1."""
    sweep = tmp_path / "sweep"
    proc = _multirun(sweep, "agent=ppo", "seed=0,1", "hydra.launcher.timeout=1")
    assert proc.returncode == 1
    assert "2 of 2 sweep jobs failed" in proc.stderr
    status = json.loads((sweep / "sweep_status.json").read_text())
    assert [j["status"] for j in status["jobs"]] == ["LAUNCHER_ERROR"] * 2
    assert all("TimeoutError" in j["error"] for j in status["jobs"])


def test_ray_existing_cluster_by_address(tmp_path: Path) -> None:
    """hydra/launcher=ray_cluster joins a Ray cluster that runs already (here one on loopback).

    The head keeps its files in its own temp dir: a killed head leaves its address file behind,
    and in /tmp/ray that stale file would make a later plain ray.init() join the dead cluster.
    """
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install 'rndx[sweep]'")
    import shutil
    import tempfile
    import time

    # short: Ray's unix socket paths under it must stay within 107 characters
    ray_tmp = tempfile.mkdtemp(prefix="rndx-ray-")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    ray_bin = Path(sys.executable).parent / "ray"
    port = "6391"
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={ray_tmp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while subprocess.run(
            [str(ray_bin), "status", f"--address={address}"], env=env, capture_output=True
        ).returncode:
            assert head.poll() is None and time.monotonic() < deadline, "ray head did not start"
            time.sleep(2)
        sweep = tmp_path / "sweep"
        proc = _multirun(
            sweep,
            "agent=ppo,ppo_rnd",
            "seed=0,1",
            "hydra/launcher=ray_cluster",
            f"hydra.launcher.ray.init.address={address}",
            extra_env={"RAY_AUTH_MODE": "token"},  # Ray 2.60: `ray start` turns token auth on
        )
        assert "Connected to Ray cluster" in proc.stdout + proc.stderr
        _assert_2x2(sweep, proc)
    finally:
        if head.poll() is None:
            os.killpg(head.pid, 15)  # `ray start --block` stops its cluster on SIGTERM
            head.wait(timeout=60)
        shutil.rmtree(ray_tmp, ignore_errors=True)
