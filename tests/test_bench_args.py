"""The benchmark scripts check their flags before any work, say what they ran with, and keep
the committed results unless the run is the default one or names its results file."""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

_args = pytest.importorskip("benchmarks._args")


def _exits_2(main, argv: list[str], monkeypatch, capsys, argv_param: bool = False) -> str:
    """Run ``main`` with ``argv``: it must stop with argparse's status 2; return stderr."""
    with pytest.raises(SystemExit) as exc:
        if argv_param:
            main(argv)
        else:
            monkeypatch.setattr(sys, "argv", ["script.py", *argv])
            main()
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_the_numeric_types() -> None:
    assert _args.positive_int("3") == 3 and _args.nonnegative_int("0") == 0
    assert _args.at_least(2)("2") == 2 and _args.positive_float("0.5") == 0.5
    assert _args.nonnegative_float("0") == 0.0
    assert _args.positive_int("1e6") == 1_000_000  # as the rndx commands take it
    for kind, text in [
        (_args.positive_int, "nan"),
        (_args.positive_int, "five"),
        (_args.positive_int, "0"),
        (_args.positive_int, "-5"),
        (_args.positive_int, "1.5"),
        (_args.nonnegative_int, "-1"),
        (_args.at_least(2), "1"),
        (_args.positive_float, "0"),
        (_args.positive_float, "-1"),
        (_args.positive_float, "nan"),
        (_args.positive_float, "inf"),
        (_args.nonnegative_float, "-0.1"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shifts", nargs="+", default=None)
    p.add_argument("--delta", type=float, default=0.1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("overrides", nargs="*")
    return p


def test_changed_lists_every_non_default_argument() -> None:
    p = _parser()
    args = p.parse_args(["--delta", "0.5", "--shifts", "nominal", "crowd", "--quick", "a=1"])
    assert _args.changed(p, args) == [
        "--shifts",
        "nominal",
        "crowd",
        "--delta",
        "0.5",
        "--quick",
        "a=1",
    ]
    assert _args.changed(p, p.parse_args([])) == []
    cmd = _args.command("x.py", p, p.parse_args(["--delta", "0.5"]), always=("seeds", "out"))
    assert cmd == "python benchmarks/x.py --seeds 0 1 2 --delta 0.5"


def test_refuse_overwrite(tmp_path) -> None:
    p = _parser()
    path = tmp_path / "r.json"
    small = p.parse_args(["--episodes", "2"])
    # no file yet, a default run, or a named results file: no objection
    _args.refuse_overwrite(p, small, [path], named=False, flag="--out")
    path.write_text("{}")
    _args.refuse_overwrite(p, p.parse_args([]), [path], named=False, flag="--out")
    _args.refuse_overwrite(p, small, [path], named=True, flag="--out")
    _args.refuse_overwrite(p, small, [path], named=False, flag="--out", skip=("episodes",))
    with pytest.raises(SystemExit):
        _args.refuse_overwrite(p, small, [path], named=False, flag="--out")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("env_speed", "writes it to benchmarks/results/NAME.md (--out NAME; default env_speed)"),
        ("train_speed", "to benchmarks/results/NAME.md (--out NAME; default train_speed)"),
        ("device_speed", "writes no file under benchmarks/results"),
        ("exploration", "Give --tag NAME to write elsewhere"),
        ("paper_agv", "Give --tag NAME to write elsewhere"),
        ("chunk_policy", "Give --out NAME to write elsewhere"),
        ("monitor", "Give --out NAME to write elsewhere"),
        ("monitor_levers", "Give --out NAME to write elsewhere"),
    ],
)
def test_every_script_states_the_results_rule(name, says, monkeypatch, capsys) -> None:
    script = pytest.importorskip(f"benchmarks.{name}")
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exc:
        script.main(["--help"]) if name == "env_speed" else script.main()
    assert exc.value.code == 0
    assert says in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--repeats", "0"], "--repeats: 0 must be >= 1"),
        (["--seconds", "0"], "--seconds: 0 must be > 0"),
        (["--seconds", "-1"], "--seconds: -1 must be > 0"),
        (["--warmup", "-1"], "--warmup: -1 must be >= 0"),
    ],
)
def test_env_speed_flags(argv, says, monkeypatch, capsys) -> None:
    env_speed = pytest.importorskip("benchmarks.env_speed")
    assert says in _exits_2(env_speed.main, argv, monkeypatch, capsys, argv_param=True)


@pytest.mark.parametrize(
    ("argv", "says"),
    [(["--rollouts", "0"], "--rollouts: 0 must be >= 1"), (["--repeats", "0"], "0 must be >= 1")],
)
def test_train_speed_flags(argv, says, monkeypatch, capsys) -> None:
    train_speed = pytest.importorskip("benchmarks.train_speed")
    assert says in _exits_2(train_speed.main, argv, monkeypatch, capsys)


def test_train_speed_reports_and_uses_the_composed_config(tmp_path, monkeypatch, capsys) -> None:
    """Overrides of n_steps and the episode cap are what runs and what is printed, and the
    printed report is the file written."""
    import rndx.agents
    import rndx.envs

    train_speed = pytest.importorskip("benchmarks.train_speed")
    monkeypatch.setattr(train_speed, "RESULTS", tmp_path)
    made = []

    class Model:
        def __init__(self, agent_cfg, env):
            self.n_steps, self.env = int(agent_cfg.ppo.n_steps), env

        def learn(self, steps, reset_num_timesteps=True):
            pass

    def make_env(env_id, n, seed, max_steps, kwargs):
        made.append(max_steps)
        return SimpleNamespace(num_envs=n)

    monkeypatch.setattr(rndx.envs, "make_sb3_vec_env", make_env)
    monkeypatch.setattr(rndx.agents, "build_agent", lambda cfg, env, *a: Model(cfg, env))
    argv = ["train_speed.py", "--agents", "ppo", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "agent.ppo.n_steps=32", "env.max_episode_steps=77"])
    train_speed.main()
    out = capsys.readouterr().out
    assert made == [77]
    assert "n_steps 32" in out and "capped at 77 steps" in out and "hard layout" in out
    assert "n_steps 256" not in out
    assert (
        "--agents ppo --rollouts 2 --repeats 1 agent.ppo.n_steps=32 env.max_episode_steps=77" in out
    )

    report = (tmp_path / "train_speed.md").read_text()
    assert report.startswith("## Training throughput") and report in out
    # a second non-default run keeps that report unless it is named
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        train_speed.main()
    assert "give --out NAME" in capsys.readouterr().err and not made[1:]
    made.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--out", "mine"])
    train_speed.main()
    assert made == [1000]  # the script's default when nothing overrides it
    assert (tmp_path / "mine.md").is_file()


def test_env_speed_keeps_the_committed_report_of_a_default_run(tmp_path, monkeypatch, capsys):
    env_speed = pytest.importorskip("benchmarks.env_speed")
    monkeypatch.setattr(env_speed, "RESULTS", tmp_path)
    (tmp_path / "env_speed.md").write_text("committed")
    assert "give --out NAME" in _exits_2(env_speed.main, ["--quick"], monkeypatch, capsys, True)
    assert (tmp_path / "env_speed.md").read_text() == "committed"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--steps", "0"], "--steps: 0 must be >= 2"),
        (["--steps", "-5"], "--steps: -5 must be >= 2"),
        (["--window", "0"], "--window: 0 must be >= 2"),
        (["--jobs", "0"], "--jobs: 0 must be >= 1"),
        (["--eval-episodes", "-1"], "--eval-episodes: -1 must be >= 0"),
        (["--action-repeat", "0"], "--action-repeat: 0 must be >= 1"),
        (["--task", "push", "--action-repeat", "2", "--tag", "t"], "only with --task agv_hard"),
    ],
)
def test_exploration_flags(argv, says, monkeypatch, capsys) -> None:
    exploration = pytest.importorskip("benchmarks.exploration")
    assert says in _exits_2(exploration.main, argv, monkeypatch, capsys)


def test_exploration_keeps_the_default_results_of_a_small_run(tmp_path, monkeypatch, capsys):
    exploration = pytest.importorskip("benchmarks.exploration")
    monkeypatch.setattr(exploration, "RESULTS", tmp_path)
    monkeypatch.setattr(exploration, "worker_pool", ThreadPoolExecutor)
    monkeypatch.setattr(exploration, "plot", lambda *a, **k: None)

    def run_one(agent, seed, steps, window, overrides, task="agv_hard", **kw):
        return {"agent": agent, "seed": seed, "curve": [(steps, 0.5)], "seconds": 1.0}

    monkeypatch.setattr(exploration, "run_one", run_one)
    monkeypatch.setattr(exploration, "table", lambda *a: "")
    committed = tmp_path / "exploration.json"
    committed.write_text('{"committed": true}')
    err = _exits_2(exploration.main, ["--steps", "20", "--seeds", "0"], monkeypatch, capsys)
    assert "exploration.json exists" in err and "--seeds 0 --steps 20" in err and "--tag" in err
    assert json.loads(committed.read_text()) == {"committed": True}
    # the partial file of a stopped default run is kept the same way
    committed.unlink()
    (tmp_path / "exploration.partial.json").write_text("{}")
    assert "partial.json exists" in _exits_2(
        exploration.main, ["--window", "100"], monkeypatch, capsys
    )
    (tmp_path / "exploration.partial.json").unlink()
    committed.write_text('{"committed": true}')
    # the job count changes no result; the default configuration rewrites its own files
    monkeypatch.setattr(sys, "argv", ["exploration.py", "--jobs", "1"])
    exploration.main()
    assert len(json.loads(committed.read_text())["results"]) == 9


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--calls", "0"], "--calls: 0 must be >= 1"),
        (["--demos", "0"], "--demos: 0 must be >= 1"),
        (["--steps", "0"], "--steps: 0 must be >= 1"),
        (["--episodes", "0"], "--episodes: 0 must be >= 1"),
        (["--noise", "-0.1"], "--noise: -0.1 must be >= 0"),
    ],
)
def test_chunk_policy_flags(argv, says, monkeypatch, capsys) -> None:
    chunk_policy = pytest.importorskip("benchmarks.chunk_policy")
    assert says in _exits_2(chunk_policy.main, argv, monkeypatch, capsys)


def test_chunk_policy_keeps_the_committed_results(tmp_path, monkeypatch, capsys) -> None:
    chunk_policy = pytest.importorskip("benchmarks.chunk_policy")
    monkeypatch.setattr(chunk_policy, "RESULTS", tmp_path)
    (tmp_path / "chunk_policy.json").write_text("{}")
    argv = ["--demos", "4", "--steps", "20", "--episodes", "2"]
    err = _exits_2(chunk_policy.main, argv, monkeypatch, capsys)
    assert "chunk_policy.json exists" in err and "--out NAME" in err
    # the push results are chunk_policy_mujoco_push.json, which is not there: no objection
    # (checked without running: the next step records demos, so stop it there)
    import rndx.demos

    def stop(*a, **k):
        raise RuntimeError("past the checks")

    monkeypatch.setattr(rndx.demos, "record", stop)
    monkeypatch.setattr(sys, "argv", ["chunk_policy.py", *argv, "--env", "mujoco_push"])
    with pytest.raises(RuntimeError, match="past the checks"):
        chunk_policy.main()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--delta", "1.5"], "delta=1.5 must be in (0, 1)"),
        (["--threshold", "foo"], "threshold='foo'"),
        (["--shifts", "nope"], "unknown shift 'nope'"),
        # the Bullet AGV has the AGV suite, not the push task's
        (["--task", "bullet", "--shifts", "heavy_block"], "'heavy_block' for rndx/Bullet"),
        (["--policies", "foo"], "invalid choice: 'foo'"),
        (["--episodes", "0"], "--episodes: 0 must be >= 1"),
        (["--calls", "0"], "--calls: 0 must be >= 1"),
        (["--ppo-window", "0"], "--ppo-window: 0 must be >= 1"),
        (["--n-samples", "1"], "--n-samples: 1 must be >= 2"),
        (["--ace-factor", "0"], "--ace-factor: 0 must be > 0"),
        (["--chunk-every", "0"], "--chunk-every: 0 must be >= 1"),
    ],
)
def test_monitor_flags(argv, says, monkeypatch, capsys) -> None:
    monitor = pytest.importorskip("benchmarks.monitor")
    monkeypatch.setattr(monitor, "ensure_runs", None)  # never reached
    assert says in _exits_2(monitor.main, [*argv, "--out", "t"], monkeypatch, capsys)


def test_monitor_needs_enough_calibration_rollouts_for_delta(monkeypatch, capsys) -> None:
    from rndx.monitors.monitor import MonitorConfig

    monitor = pytest.importorskip("benchmarks.monitor")
    monkeypatch.setattr(monitor, "ensure_runs", None)  # never reached
    need = MonitorConfig(delta=0.1).min_rollouts()
    argv = ["--calibration", str(need - 1), "--out", "t"]
    err = " ".join(_exits_2(monitor.main, argv, monkeypatch, capsys).split())
    assert f"--calibration {need - 1} is too few for --delta 0.1" in err
    assert f"at least {need}" in err
    need = MonitorConfig(delta=0.05, threshold="cp_joint").min_rollouts()
    argv = ["--delta", "0.05", "--threshold", "cp_joint", "--out", "t"]
    assert f"at least {need}" in " ".join(_exits_2(monitor.main, argv, monkeypatch, capsys).split())


def test_monitor_records_every_setting_in_its_command_line(monkeypatch) -> None:
    monitor = pytest.importorskip("benchmarks.monitor")
    seen = []

    def command(*a, **k):
        seen.append(_args.command(*a, **k))
        return seen[-1]

    def stop(*a):
        raise RuntimeError("past the checks")

    monkeypatch.setattr(monitor, "command", command)
    monkeypatch.setattr(monitor, "ensure_runs", stop)
    argv = ["--delta", "0.5", "--shifts", "nominal", "--ppo-window", "4", "--calls", "7"]
    monkeypatch.setattr(sys, "argv", ["monitor.py", *argv, "--out", "t"])
    with pytest.raises(RuntimeError, match="past the checks"):
        monitor.main()
    assert seen == [
        "python benchmarks/monitor.py --task agv --episodes 100 --calibration 50 --seeds 0 1 2 "
        "--shifts nominal --delta 0.5 --calls 7 --ppo-window 4 --out t"
    ]


def test_monitor_keeps_the_committed_results(tmp_path, monkeypatch, capsys) -> None:
    monitor = pytest.importorskip("benchmarks.monitor")
    monkeypatch.setattr(monitor, "RESULTS", tmp_path)
    monkeypatch.setattr(monitor, "ensure_runs", None)  # never reached
    (tmp_path / "monitor.md").write_text("")
    err = _exits_2(monitor.main, ["--episodes", "2"], monkeypatch, capsys)
    assert "monitor.md exists" in err and "--episodes 2" in err


@pytest.mark.parametrize("task", ["agv", "bullet"])
def test_monitor_with_the_default_settings_may_rewrite_its_results(
    task, tmp_path, monkeypatch
) -> None:
    """The default shift list (filled in from the task's suite) is not a changed setting."""
    monitor = pytest.importorskip("benchmarks.monitor")
    monkeypatch.setattr(monitor, "RESULTS", tmp_path)
    (tmp_path / f"{monitor.TASKS[task]['results']}.md").write_text("")

    def stop(*a, **k):
        raise RuntimeError("past the results rule")

    monkeypatch.setattr(monitor, "ensure_runs", stop)
    monkeypatch.setattr(sys, "argv", ["monitor.py", "--task", task])
    with pytest.raises(RuntimeError, match="past the results rule"):
        monitor.main()


def test_calibration_gives_up_on_a_policy_that_never_succeeds(monkeypatch) -> None:
    import rndx.monitors.rollouts

    monitor = pytest.importorskip("benchmarks.monitor")
    calls = []

    def run_rollouts(model, env_id, n, seed, *a, **k):
        calls.append(n)
        return [SimpleNamespace(success=i == 0 and seed == 10_000, obs=i) for i in range(n)]

    monkeypatch.setattr(rndx.monitors.rollouts, "run_rollouts", run_rollouts)
    with pytest.raises(RuntimeError, match=r"only 1 of 40 nominal rollouts succeeded, 2 needed"):
        monitor.calibration_successes(None, "env", 2, 0, 10, {}, True)
    assert sum(calls) == 40 == monitor.CALIBRATION_TRIES * 2
    # a policy that succeeds gets its successes from the same seeds as before
    calls.clear()
    monkeypatch.setattr(
        rndx.monitors.rollouts,
        "run_rollouts",
        lambda m, e, n, seed, *a, **k: [
            SimpleNamespace(success=True, obs=seed + i) for i in range(n)
        ],
    )
    ok, tried = monitor.calibration_successes(None, "env", 3, 1, 10, {}, True)
    assert tried == 10 and ok[:3] == [11_000, 11_001, 11_002]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--every", "3"], "invalid choice: 3"),
        (["--episodes", "0"], "--episodes: 0 must be >= 1"),
        (["--n-samples", "1"], "--n-samples: 1 must be >= 2"),
        (["--only", "foo=1"], "--only 'foo=1'"),
        (["--only", "window=x"], "--only 'window=x'"),
    ],
)
def test_monitor_levers_flags(argv, says, monkeypatch, capsys) -> None:
    levers = pytest.importorskip("benchmarks.monitor_levers")
    monkeypatch.setattr(levers, "ensure_runs", None)  # never reached
    assert says in _exits_2(levers.main, [*argv, "--out", "t"], monkeypatch, capsys)


def test_monitor_levers_calibration_count_is_checked_first(monkeypatch, capsys) -> None:
    levers = pytest.importorskip("benchmarks.monitor_levers")
    monkeypatch.setattr(levers, "ensure_runs", None)  # never reached
    need = levers.min_calibration()
    assert need > max(levers.SPLITS) and need <= 50  # the default is enough
    argv = ["--calibration", str(need - 1), "--out", "t"]
    assert f"at least {need}" in _exits_2(levers.main, argv, monkeypatch, capsys)


def test_monitor_levers_keeps_the_committed_results(tmp_path, monkeypatch, capsys) -> None:
    levers = pytest.importorskip("benchmarks.monitor_levers")
    monkeypatch.setattr(levers, "RESULTS", tmp_path)
    monkeypatch.setattr(levers, "ensure_runs", None)  # never reached
    (tmp_path / "monitor_levers_0_1_2.json").write_text("{}")
    err = _exits_2(levers.main, ["--episodes", "2"], monkeypatch, capsys)
    assert "monitor_levers_0_1_2.json exists" in err and "--out NAME" in err


def test_monitor_levers_cache_key_covers_every_setting(tmp_path) -> None:
    levers = pytest.importorskip("benchmarks.monitor_levers")
    model = tmp_path / "model.zip"
    model.write_bytes(b"policy one")
    args = SimpleNamespace(calibration=50, episodes=2, every=2, n_samples=64)
    env_id, shifts = "rndx/AGVWarehouse-v0", ["nominal", "crowd"]

    def key(a=args, seed=0, shifts=shifts, kwargs=None, max_steps=500):
        kwargs = {"layout": "small"} if kwargs is None else kwargs
        return levers.cache_key(model, seed, a, env_id, shifts, max_steps, kwargs, False)

    base = key()
    files = {levers.cache_file(tmp_path, base)}
    for k in (
        key(SimpleNamespace(**{**vars(args), "calibration": 80})),
        key(SimpleNamespace(**{**vars(args), "episodes": 3})),
        key(SimpleNamespace(**{**vars(args), "every": 4})),
        key(SimpleNamespace(**{**vars(args), "n_samples": 32})),
        key(seed=1),
        key(shifts=["nominal"]),
        key(kwargs={"layout": "hard"}),
        key(max_steps=400),
    ):
        assert k != base
        files.add(levers.cache_file(tmp_path, k))
    model.write_bytes(b"policy two")  # retrained: the same settings, another policy
    files.add(levers.cache_file(tmp_path, key()))
    assert len(files) == 10
    assert key() == key() and levers.cache_file(tmp_path, key()).name.startswith(
        "seed0_every2_ep2_cal50_"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--steps", "1"], "--steps: 1 must be >= 2"),
        (["--window", "1"], "--window: 1 must be >= 2"),
        (["--jobs", "0"], "--jobs: 0 must be >= 1"),
        (["--seeds", "-1"], "--seeds: -1 must be >= 0"),
    ],
)
def test_paper_agv_flags(argv, says, monkeypatch, capsys) -> None:
    paper_agv = pytest.importorskip("benchmarks.paper_agv")
    assert says in _exits_2(paper_agv.main, argv, monkeypatch, capsys)


def test_paper_agv_keeps_the_committed_results(tmp_path, monkeypatch, capsys) -> None:
    paper_agv = pytest.importorskip("benchmarks.paper_agv")
    monkeypatch.setattr(paper_agv, "RESULTS", tmp_path)
    (tmp_path / "paper_agv.json").write_text("{}")
    argv = ["--scenes", "simple_static", "--seeds", "0", "--steps", "100"]
    err = _exits_2(paper_agv.main, argv, monkeypatch, capsys)
    assert "paper_agv.json exists" in err and "--tag NAME" in err


def test_device_speed_flags(monkeypatch, capsys) -> None:
    device_speed = pytest.importorskip("benchmarks.device_speed")
    for flag in ("--n-envs", "--rollouts", "--repeats", "--threads"):
        assert f"{flag}: 0 must be >= 1" in _exits_2(
            device_speed.main, [flag, "0"], monkeypatch, capsys
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_benchmark_workers_die_with_a_killed_parent(tmp_path) -> None:
    """kill -9 of a benchmark leaves no pool worker behind (they used to block forever)."""
    import os
    import subprocess
    import time

    script = (
        "import os, sys, time\n"
        "from benchmarks._args import worker_pool\n"
        "pool = worker_pool(1)\n"
        "print(pool.submit(os.getpid).result(), flush=True)\n"
        "pool.submit(time.sleep, 60)\n"
        "time.sleep(60)\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, 9)
    pytest.fail(f"worker {worker} outlived its killed parent")
