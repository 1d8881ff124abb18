"""Runtime failure monitoring: ``rndx.monitor(policy, calibration=..., delta=..., window=...,
rule="and")`` and the command line

    python -m rndx.monitor calibrate run=<dir> [episodes=50] [delta=0.1] [window=W]
        [rule=and] [threshold=cp_constant] [n_samples=64] [score_every=K] [rnd=fit|reuse]
        [seed=S]
    python -m rndx.monitor evaluate run=<dir> [shifts=[crowd,lidar_noise,...]] [episodes=100]
        [seed=S]

``calibrate`` rolls out the run's policy on its env, keeps the successful rollouts,
calibrates FIPER on them and saves ``<run>/monitor.pt``. By default K (score every K-th step)
is a chunk policy's ``execute`` (1 for other agents) and the window W is 2 when K > 1, else
10. ``rnd=reuse`` scores RND-OE with the RND module that drove exploration in training
(IntrinsicPPO agents whose RND saw observations); ``rnd=fit`` (default) fits a new pair.
``evaluate`` rolls out under each named shift of the run's env (:mod:`rndx.envs.shifts`: the
AGV suite, the push suite; all of them by default) and prints TPR, TNR, accuracy, DT and TWA
of FIPER, RND-OE alone, ACE alone and the OR rule as one table (also written to
``<run>/monitor_eval_<seed>.json``).

This module is callable: ``rndx.monitor(...)`` is :func:`rndx.monitors.monitor`. (A module
and a function cannot share the name ``rndx.monitor`` otherwise: importing the module would
replace the function on the package.)
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from rndx.monitors import MonitoredPolicy, load_monitor
from rndx.monitors import monitor as _monitor
from rndx.utils.checks import whole_number
from rndx.utils.cli import count, exit_on_help, parse_key_values
from rndx.utils.headless import use_headless_backends

__all__ = ["MonitoredPolicy", "load_monitor", "main"]

_USAGE = (
    "usage: python -m rndx.monitor calibrate run=<dir> [episodes=50] [delta=0.1] [window=W] "
    "[rule=and] [threshold=cp_constant] [n_samples=64] [score_every=K] [rnd=fit|reuse] "
    "[seed=S]\n"
    "         (defaults: K = a chunk policy's execute, else 1; W = 2 if K > 1, else 10;\n"
    "          S = the run's seed + 2000 for calibrate, + 3000 for evaluate)\n"
    "       python -m rndx.monitor evaluate run=<dir> [shifts=[a,b,...]] [episodes=100] [seed=S]"
)
_KEYS = {
    "calibrate": {
        "run": str,
        "episodes": count,
        "seed": int,
        "delta": float,
        "window": int,
        "rule": str,
        "threshold": str,
        "n_samples": int,
        "score_every": int,
        "rnd": str,
    },
    "evaluate": {"run": str, "episodes": count, "seed": int, "shifts": str},
}


def parse_cli(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """``<command> key=value ...`` -> (command, typed args); errors name the valid keys."""
    if not argv or argv[0] not in _KEYS:
        exit_on_help(argv)  # `calibrate --help` goes on to list that command's keys
        raise ValueError(f"first argument must be one of {list(_KEYS)}, got {argv[:1]}")
    cmd = argv[0]
    args = parse_key_values(argv[1:], _KEYS[cmd], context=cmd)
    if "shifts" in args:  # names are checked against the run's env in evaluate_run
        args["shifts"] = _shift_list(args["shifts"])
    if "seed" in args:  # before any rollout (Gymnasium's own error comes as a traceback)
        whole_number("seed", args["seed"], 0, maximum=2**32 - 1)
    return cmd, args


def _shift_list(text: str) -> list[str]:
    """``[a,b]`` or ``a,b`` as a list of names; ValueError for unbalanced brackets, an empty
    list or entry, or a name given twice (it would count twice in the suite mean)."""
    raw = text.strip()
    if raw.startswith("[") != raw.endswith("]"):
        raise ValueError(f"shifts={text!r}: unbalanced brackets; write shifts=[a,b,...]")
    inner = raw[1:-1] if raw.startswith("[") else raw
    names = [s.strip() for s in inner.split(",")]
    if not any(names):
        raise ValueError(f"shifts={text!r} is empty; leave shifts= out for the env's whole suite")
    if not all(names):
        raise ValueError(f"shifts={text!r} has an empty entry")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"shifts={text!r} names {', '.join(twice)} more than once")
    return names


def _load_run(run: str):
    from rndx.config import to_dict
    from rndx.evaluate import load_model_file, load_run_config

    cfg = load_run_config(run)
    model = load_model_file(str(cfg.agent.algo), Path(run) / "model.zip")
    env = {
        "env_id": str(cfg.env.id),
        "max_episode_steps": int(cfg.env.max_episode_steps),
        "env_kwargs": to_dict(cfg.env.get("kwargs")),
        "deterministic": bool(cfg.eval.deterministic),
    }
    return cfg, model, env


def calibrate_run(run: str, episodes: int = 50, seed: int | None = None, **options: Any):
    """Calibrate on ``episodes`` rollouts of the run's policy; save ``<run>/monitor.pt``."""
    from rndx.monitors.evaluation import calibrate_from_rollouts
    from rndx.monitors.monitor import MonitorConfig

    cfg, model, env = _load_run(run)
    seed = int(cfg.seed) + 2000 if seed is None else seed
    # FIPER scores once per predicted chunk: every `execute` steps for the chunk policy
    options.setdefault("score_every", int(getattr(model, "execute", 1)))
    options.setdefault("window", 2 if options["score_every"] > 1 else 10)  # benchmark's
    mon, summary = calibrate_from_rollouts(
        model,
        env["env_id"],
        episodes,
        seed,
        env["max_episode_steps"],
        env["env_kwargs"],
        MonitorConfig(**options),
        env["deterministic"],
    )
    path = mon.save(Path(run) / "monitor.pt")
    return path, mon, summary


def evaluate_run(run: str, shifts: list[str] | None = None, episodes: int = 100, seed=None):
    """Evaluate ``<run>/monitor.pt`` on each shift; write ``monitor_eval_<seed>.json``."""
    from rndx.envs import resolve_env_id
    from rndx.envs.shifts import get_shift, known_shifts
    from rndx.monitors.evaluation import evaluate_shift
    from rndx.utils.io import atomic_write_json

    cfg, model, env = _load_run(run)
    env["env_id"] = resolve_env_id(env["env_id"])
    shifts = shifts or known_shifts(env["env_id"])
    for name in shifts:  # before any rollout: an unknown name lists the env's known ones
        get_shift(name, env["env_id"])
    mon = load_monitor(Path(run) / "monitor.pt", model).monitor  # sizes checked against model
    seed = int(cfg.seed) + 3000 if seed is None else seed
    results = [
        evaluate_shift(
            mon,
            model,
            env["env_id"],
            s,
            episodes,
            seed,
            env["max_episode_steps"],
            env["env_kwargs"],
            env["deterministic"],
        )
        for s in shifts
    ]
    atomic_write_json(Path(run) / f"monitor_eval_{seed}.json", results)
    return results


def main(argv: list[str] | None = None) -> int:
    """CLI entry; errors print one line plus usage and return 2."""
    from rndx.monitors.evaluation import format_table

    use_headless_backends()
    try:
        cmd, args = parse_cli(sys.argv[1:] if argv is None else argv)
        run = args.pop("run")
        if cmd == "calibrate":
            path, mon, summary = calibrate_run(run, **args)
            print(
                f"calibrated on {summary['successes']} successful of {summary['episodes']} "
                f"rollouts (delta {mon.config.delta}, window {mon.config.window}, "
                f"{mon.config.threshold}): thresholds RND-OE {mon.rnd_threshold.max():.4g}, "
                f"ACE {mon.ace_threshold.max():.4g}\n  wrote {path}"
            )
        else:
            print(format_table(evaluate_run(run, **args)))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}\n{_USAGE}", file=sys.stderr)
        return 2
    return 0


class _CallableModule(types.ModuleType):
    """Lets ``rndx.monitor(policy, ...)`` call :func:`rndx.monitors.monitor`."""

    def __call__(self, *args: Any, **kwargs: Any) -> MonitoredPolicy:
        return _monitor(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule
