"""Learning curves of runs: ``python -m rndx.report <run or folder> ... [out=<dir>]``.

Reads the TensorBoard logs of every run given (a run dir, or a folder searched for run dirs:
``runs/``, a multirun sweep), groups runs whose configs differ only in seed, and
writes ``<out>/curves.png`` (training success rate and episode return against env steps,
mean and min-max spread over seeds) and ``<out>/report.md`` (a markdown table of the last
logged values and each run's eval.json).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rndx.evaluate import load_run_config
from rndx.utils.cli import help_text, wants_help
from rndx.utils.io import atomic_save, atomic_write_text

SUCCESS_TAG = "rollout/success_rate"
RETURN_TAG = "rollout/ep_rew_mean"
TAGS = {SUCCESS_TAG: "success rate (training episodes)", RETURN_TAG: "episode return"}

Curve = tuple[np.ndarray, np.ndarray]  # (env steps, values)


@dataclass
class Run:
    """One run's identity and its logged curves."""

    path: Path
    group: str
    seed: int
    curves: dict[str, Curve]
    eval: dict = field(default_factory=dict)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs named by ``paths``: a run dir itself (it holds ``config.yaml``) or every run
    dir found below a folder.

    :raises FileNotFoundError: if a path does not exist.
    :raises ValueError: if a path holds no run dir, or no path was given.
    """
    runs: list[Path] = []
    given = [Path(p) for p in paths]
    if not given:
        raise ValueError("no run dirs given")
    for p in given:
        if not p.exists():
            raise FileNotFoundError(f"{str(p)!r} does not exist (expected a run dir or a folder)")
        if (p / "config.yaml").is_file():
            runs.append(p)
            continue
        found = sorted(c.parent for c in p.rglob("config.yaml") if (c.parent / "tb").is_dir())
        if not found:
            raise ValueError(
                f"{str(p)!r} is not an rndx run dir and holds none (a run dir has "
                "config.yaml and tb/, as rndx.train writes them)"
            )
        runs.extend(found)
    return list(dict.fromkeys(runs))


def read_scalars(run_dir: str | Path, tags: Sequence[str] = tuple(TAGS)) -> dict[str, Curve]:
    """The scalars ``tags`` of all TensorBoard event files under ``<run_dir>/tb``, merged
    and sorted by step (a resumed run appends to the same folder; the last value per step wins).

    :raises ValueError: if the run has no event files.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(run_dir).glob("tb/**/events.out.tfevents.*"))
    if not files:
        raise ValueError(
            f"{str(run_dir)!r} has no TensorBoard logs (expected tb/**/events.out.tfevents.*)"
        )
    points: dict[str, dict[int, float]] = {t: {} for t in tags}
    # one accumulator per log folder: it reads the folder's files in order and honours the
    # purge marker a resumed run writes (points a killed run logged after its checkpoint)
    for folder in sorted({f.parent for f in files}):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        available = set(acc.Tags().get("scalars", []))
        for tag in tags:
            if tag in available:
                points[tag].update({int(e.step): float(e.value) for e in acc.Scalars(tag)})
    out = {}
    for tag, pts in points.items():
        if pts:
            steps = np.array(sorted(pts), dtype=np.int64)
            out[tag] = (steps, np.array([pts[s] for s in steps], dtype=np.float64))
    return out


# Settings that do not make a run a different experiment: they vary between seeds of one, or
# say only where and how a run was written and shown.
_NOT_VARIANT = ("seed", "run_dir", "resume", "eval.seed", "progress_bar", "video", "device")


def _settings(cfg: Any) -> dict[str, str]:
    """A run config's settings as ``{"dotted.key": value as text}``, less ``_NOT_VARIANT``."""
    from omegaconf import OmegaConf

    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
            return
        key = prefix[:-1]
        if not any(key == n or key.startswith(n + ".") for n in _NOT_VARIANT):
            out[key] = json.dumps(node, sort_keys=True, default=str)

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run under ``paths`` with its curves and eval.json (empty if missing).

    Runs are grouped when their configs differ only in seed (and where they were written):
    two groups of one env and agent are labelled by the settings that tell them apart, e.g.
    ``agv_warehouse / ppo_rnd [total_timesteps=4096]``.

    Runs that logged none of the curves (imitation agents log no env episodes) are left
    out with a ``UserWarning`` naming them.

    :raises ValueError: if no run under ``paths`` logged any of the curves.
    """
    loaded = []
    found = find_runs(paths)
    skipped = []
    for path in found:
        cfg = load_run_config(path)
        curves = read_scalars(path)
        if not curves:
            skipped.append(path)
            continue
        eval_file = path / "eval.json"
        ev = json.loads(eval_file.read_text()) if eval_file.is_file() else {}
        base = f"{cfg.env.name} / {cfg.agent.name}"
        loaded.append((path, base, _settings(cfg), int(cfg.seed), curves, ev))
    none_logged = f"logged none of {', '.join(TAGS)} (imitation agents log no env episodes)"
    if not loaded:
        names = ", ".join(repr(str(p)) for p in skipped)
        raise ValueError(f"no run to report: {names} {none_logged}")
    if skipped:
        names = ", ".join(repr(str(p)) for p in skipped)
        warnings.warn(f"left out {len(skipped)} run(s) that {none_logged}: {names}", stacklevel=2)
    runs = []
    for path, base, settings, seed, curves, ev in loaded:
        peers = [s for _, b, s, *_ in loaded if b == base]
        keys = {k for s in peers for k in s}
        differ = sorted(k for k in keys if len({s.get(k) for s in peers}) > 1)
        label = " ".join(f"{k}={settings.get(k, 'unset')}" for k in differ)
        runs.append(Run(path, f"{base} [{label}]" if label else base, seed, curves, ev))
    return runs


def aggregate(curves: Sequence[Curve], points: int = 200) -> tuple[np.ndarray, ...]:
    """Mean, min and max of curves on a common step grid up to the shortest curve's end.

    Each curve is linearly interpolated between its logged steps.
    :return: (steps, mean, lo, hi).
    """
    start = max(c[0][0] for c in curves)
    end = min(c[0][-1] for c in curves)
    grid = np.linspace(start, end, points) if end > start else np.array([end], dtype=float)
    vals = np.stack([np.interp(grid, t, v) for t, v in curves])
    return grid, vals.mean(0), vals.min(0), vals.max(0)


def plot_curves(
    panels: Sequence[tuple[str, Mapping[str, Sequence[Curve]]]],
    path: str | Path,
    title: str = "",
    ylims: Sequence[tuple[float, float] | None] | None = None,
) -> Path:
    """A row of panels, each ``(y label, {label: curves of its seeds})``: mean line and
    min-max band over seeds against env steps; saved atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.0), squeeze=False)
    for k, (ax, (ylabel, groups)) in enumerate(zip(axes[0], panels)):
        for label, curves in groups.items():
            if not curves:
                continue
            t, mean, lo, hi = aggregate(curves)
            line = ax.plot(t, mean, label=f"{label} (n={len(curves)})")[0]
            if len(curves) > 1:
                ax.fill_between(t, lo, hi, alpha=0.2, color=line.get_color())
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        if ylims is not None and ylims[k] is not None:
            ax.set_ylim(*ylims[k])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    dest = atomic_save(lambda p: fig.savefig(p, dpi=110), path)
    plt.close(fig)
    return dest


def _fmt(values: Sequence[float | None]) -> str:
    vals = np.array([v for v in values if v is not None], dtype=float)
    if len(vals) == 0:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.3g}"
    return f"{vals.mean():.3g} ± {vals.std():.2g}"


def table(runs: Sequence[Run]) -> str:
    """Markdown table, one row per group: last logged success/return (mean ± std over seeds)
    and the eval.json figures."""
    head = (
        "| env / agent | seeds | env steps | train success (last) | train return (last) "
        "| eval success | eval return |\n|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for group in dict.fromkeys(r.group for r in runs):
        rs = [r for r in runs if r.group == group]

        def last(r: Run, tag: str) -> float | None:
            return float(r.curves[tag][1][-1]) if tag in r.curves else None

        steps = [int(max(c[0][-1] for c in r.curves.values())) for r in rs]
        span = f"{min(steps)}" if min(steps) == max(steps) else f"{min(steps)}-{max(steps)}"
        rows.append(
            f"| {group} | {', '.join(str(r.seed) for r in rs)} | {span} "
            f"| {_fmt([last(r, SUCCESS_TAG) for r in rs])} "
            f"| {_fmt([last(r, RETURN_TAG) for r in rs])} "
            f"| {_fmt([r.eval.get('success_rate') for r in rs])} "
            f"| {_fmt([r.eval.get('mean_return') for r in rs])} |"
        )
    return "\n".join(rows)


def write_report(paths: Iterable[str | Path], out_dir: str | Path = "reports") -> dict[str, Path]:
    """Write ``curves.png`` and ``report.md`` for the runs under ``paths`` into ``out_dir``."""
    runs = load_runs(paths)
    out = Path(out_dir)
    panels = []
    for tag, ylabel in TAGS.items():
        groups: dict[str, list[Curve]] = {}
        for r in runs:
            if tag in r.curves:
                groups.setdefault(r.group, []).append(r.curves[tag])
        if groups:
            panels.append((ylabel, groups))
    ylims = [(-0.02, 1.02) if label == TAGS[SUCCESS_TAG] else None for label, _ in panels]
    png = plot_curves(panels, out / "curves.png", "mean and min-max over seeds", ylims)
    listing = "\n".join(f"- `{r.path}` (seed {r.seed})" for r in runs)
    md = (
        f"# Learning curves\n\n![curves](curves.png)\n\n{table(runs)}\n\n"
        f"train columns: last value TensorBoard logged ({SUCCESS_TAG}, {RETURN_TAG}); "
        "eval columns: each run's eval.json.\n\nRuns:\n\n"
        f"{listing}\n"
    )
    md_path = atomic_write_text(out / "report.md", md)
    return {"curves": png, "table": md_path}


_USAGE = "usage: python -m rndx.report <run dir or folder> [...] [out=<dir>, default reports]"


def main(argv: list[str] | None = None) -> int:
    """CLI entry: write the report and print the table; errors print one line and return 2."""
    args = sys.argv[1:] if argv is None else argv
    if wants_help(args):
        print(help_text(_USAGE, __doc__), end="")
        return 0
    out = "reports"
    paths = []
    for a in args:
        if a.startswith("out="):
            out = a.partition("=")[2]
        elif "=" in a and not Path(a).exists():
            print(
                f"error: bad argument {a!r}; the only option is out=<dir>\n{_USAGE}",
                file=sys.stderr,
            )
            return 2
        else:
            paths.append(a)
    try:
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", UserWarning)
            written = write_report(paths, out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}\n{_USAGE}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note.message}", file=sys.stderr)
    md = written["table"].read_text()
    print(md.split("\n\n")[2])
    print(f"\nwrote {written['curves']} and {written['table']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
