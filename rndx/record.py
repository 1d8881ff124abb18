"""Record rollout videos of a trained run: ``python -m rndx.record run=<dir> [episodes=N]``.

Reloads ``config.yaml`` and ``model.zip``, plays whole episodes on one env rendering
``rgb_array`` frames, and writes one video per episode (MP4 through imageio's ffmpeg plugin,
or GIF with ``format=gif``) into ``videos/<run name>/``. When the run holds a calibrated
monitor (``<run>/monitor.pt``), the policy runs under it and every frame gets a strip with the
RND-OE and ACE scores against their thresholds, the alarm marked where it fires.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rndx.config import to_dict
from rndx.evaluate import eval_seed, load_model_file, load_run_config
from rndx.utils.checks import finite_number, whole_number
from rndx.utils.cli import count, parse_key_values, to_bool
from rndx.utils.headless import use_headless_backends
from rndx.utils.io import atomic_save
from rndx.utils.sde import resample_sde_noise
from rndx.viz.strip import REQUIRED_KEYS, strip_frames

# rndx.envs (pygame, MuJoCo) is imported lazily, so this still runs before their first import.
use_headless_backends()

FORMATS = ("mp4", "gif")


class NotRenderable(ValueError):
    """The run's env has no ``rgb_array`` render mode, so there is nothing to record."""


@dataclass
class Episode:
    """One recorded episode: the reset frame plus one frame per step, and what happened."""

    frames: list[np.ndarray]
    ret: float = 0.0
    success: bool | None = None
    monitor: list[dict[str, Any]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.frames) - 1

    @property
    def alarm_step(self) -> int | None:
        return next((int(r["alarm_step"]) for r in self.monitor if r["alarm"]), None)


def load_run_monitor(run_dir: str | Path, policy: Any) -> Any | None:
    """The run's calibrated monitor wrapped around ``policy``, or None without ``monitor.pt``.

    ``rndx.monitors`` is imported only when the file exists, so recording works without it.
    """
    path = Path(run_dir) / "monitor.pt"
    if not path.is_file():
        return None
    from rndx.monitors import load_monitor

    return load_monitor(path, policy)


def monitor_record(out: Any) -> dict[str, Any]:
    """The monitor dict of one step from the second element a monitored ``predict`` returns
    (the dict itself, a one-element batch of dicts, or a dict holding it under ``monitor``).

    :raises ValueError: if no dict with the monitor keys is found.
    """
    if isinstance(out, Mapping) and "monitor" in out and "rnd_oe" not in out:
        out = out["monitor"]
    if isinstance(out, Sequence) and not isinstance(out, str | bytes) and len(out) == 1:
        out = out[0]
    if not isinstance(out, Mapping) or not set(REQUIRED_KEYS) <= set(out):
        raise ValueError(
            f"monitored predict returned {type(out).__name__} without the monitor keys "
            f"{', '.join(REQUIRED_KEYS)}"
        )
    rec = dict(out)
    for key in ("rnd_oe", "ace", "rnd_oe_threshold", "ace_threshold"):
        rec[key] = float(np.asarray(rec[key]).reshape(-1)[0])
    rec["alarm"] = bool(np.asarray(rec["alarm"]).reshape(-1)[0])
    return rec


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def play_episode(env: Any, policy: Any, seed: int, deterministic: bool, monitored: bool) -> Episode:
    """Run one episode of ``policy`` on ``env`` (render_mode ``rgb_array``), keeping frames."""
    obs, _ = env.reset(seed=seed)
    if monitored and hasattr(policy, "reset"):
        policy.reset()
    episode = Episode(frames=[env.render()])
    pass_start = _accepts(policy.predict, "episode_start")
    pass_det = _accepts(policy.predict, "deterministic")
    first, done = True, False
    while not done:
        kwargs: dict[str, Any] = {"deterministic": deterministic} if pass_det else {}
        if pass_start:
            kwargs["episode_start"] = np.array([first])
        if not deterministic:  # a gSDE agent: one noise draw per episode
            resample_sde_noise(policy, 1, np.array([first]))
        action, extra = policy.predict(obs, **kwargs)
        if monitored:
            episode.monitor.append(monitor_record(extra))
        obs, reward, terminated, truncated, info = env.step(np.asarray(action).reshape(-1))
        episode.ret += float(reward)
        episode.frames.append(env.render())
        first, done = False, bool(terminated or truncated)
        if done and "is_success" in info:
            episode.success = bool(info["is_success"])
    return episode


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write (H, W, 3) uint8 frames to ``path`` atomically; the suffix picks the format.

    MP4 is H.264 (yuv420p, so odd sizes are padded by one pixel); GIF loops forever.

    :raises ValueError: on an unknown suffix or no frames.
    """
    dest = Path(path)
    fmt = dest.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"video format {fmt!r} of {str(dest)!r}; allowed: {', '.join(FORMATS)}")
    if not frames:
        raise ValueError(f"no frames to write to {str(dest)!r}")
    fps = finite_number("fps", fps, 0.0, open_min=True)

    def write(tmp: Path) -> None:
        if fmt == "gif":
            import imageio.v3 as iio

            iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
            return
        import imageio.v2 as imageio

        h, w = frames[0].shape[:2]
        pad = ((0, h % 2), (0, w % 2), (0, 0))
        with imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, quality=7
        ) as writer:
            for f in frames:
                writer.append_data(np.pad(f[..., :3], pad, mode="edge"))

    return atomic_save(write, dest)


def _resize(frames: list[np.ndarray], scale: float) -> list[np.ndarray]:
    if scale == 1.0:
        return frames
    from PIL import Image

    h, w = frames[0].shape[:2]
    size = (max(int(round(w * scale)), 2), max(int(round(h * scale)), 2))
    return [np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames]


def record_run(
    run_dir: str | Path,
    episodes: int = 1,
    seed: int | None = None,
    fmt: str = "mp4",
    out_dir: str | Path | None = None,
    deterministic: bool | None = None,
    fps: float | None = None,
    every: int = 1,
    scale: float = 1.0,
    strip_height: int = 96,
    shift: str | None = None,
) -> list[dict[str, Any]]:
    """Record ``episodes`` videos of the run's model; return one summary dict per video.

    :param seed: episode k uses seed + k; None: the run's evaluation seed.
    :param out_dir: None: ``videos/<run dir name>``.
    :param every: keep every ``every``-th frame (smaller files; the strip still sees all steps).
    :param scale: resize factor of the frames (0.5 halves width and height).
    :param shift: a named distribution shift of :mod:`rndx.envs.shifts` to record under
        (AGV envs), e.g. ``actuator_loss``; None: the run's own env.
    :raises FileNotFoundError: if the run dir, its config or its model is missing.
    :raises ValueError: on a bad argument or an env that cannot render ``rgb_array``.
    """
    import gymnasium as gym

    from rndx.envs import flatten_dict_obs  # importing rndx.envs registers the rndx ids

    if episodes < 1:
        raise ValueError(f"episodes={episodes!r} must be >= 1")
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}; allowed: {', '.join(FORMATS)}")
    if every < 1 or not 0.0 < scale <= 4.0:
        raise ValueError(f"every={every!r} must be >= 1 and scale={scale!r} in (0, 4]")
    if seed is not None:
        seed = whole_number("seed", seed, 0)
    if fps is not None:  # before the rollout, not only when the video is written
        finite_number("fps", fps, 0.0, open_min=True)
    run = Path(run_dir)
    cfg = load_run_config(run)
    model = load_model_file(str(cfg.agent.algo), run / "model.zip")
    monitor = load_run_monitor(run, model)
    policy = model if monitor is None else monitor
    seed = eval_seed(cfg) if seed is None else int(seed)
    det = bool(cfg.eval.deterministic if deterministic is None else deterministic)
    out = Path(out_dir) if out_dir is not None else Path("videos") / run.resolve().name

    env_id = str(cfg.env.id)
    kwargs = to_dict(cfg.env.get("kwargs")) or {}
    max_steps = cfg.env.get("max_episode_steps")
    if shift is None:
        env = gym.make(env_id, render_mode="rgb_array", max_episode_steps=max_steps, **kwargs)
    else:
        from rndx.envs.shifts import make_shifted_env

        env = make_shifted_env(
            env_id, shift, seed, render_mode="rgb_array", max_episode_steps=max_steps, **kwargs
        )
    if "rgb_array" not in env.metadata.get("render_modes", []):
        env.close()
        raise NotRenderable(f"env {env_id!r} cannot render rgb_array frames; nothing to record")
    env = flatten_dict_obs(env)  # as in training: the policy takes Dict observations flattened
    fps = float(fps if fps is not None else env.metadata.get("render_fps", 10)) / every
    horizon = int(max_steps) if max_steps is not None else None
    written = []
    try:
        for k in range(episodes):
            ep = play_episode(env, policy, seed + k, det, monitor is not None)
            frames = ep.frames
            if monitor is not None:
                frames = strip_frames(frames, ep.monitor, strip_height, horizon or ep.length)
            frames = _resize(frames[::every], scale)
            path = write_video(frames, out / f"episode_{seed + k}.{fmt}", fps)
            written.append(
                {
                    "path": str(path),
                    "frames": len(frames),
                    "length": ep.length,
                    "return": ep.ret,
                    "success": ep.success,
                    "alarm_step": ep.alarm_step if monitor is not None else None,
                }
            )
    finally:
        env.close()
    return written


def after_training(cfg: Any, run_dir: str | Path, model: Any = None) -> dict[str, Path]:
    """What ``rndx.train`` writes after evaluating: the novelty map (AGV runs with a
    pose-input intrinsic module) and, unless ``video.enabled`` is false, the evaluation video.

    :return: label -> path of each file written, for the final printout.
    """
    from rndx.viz.novelty import supports_novelty_map, write_novelty_map

    written: dict[str, Path] = {}
    run = Path(run_dir)
    if supports_novelty_map(cfg):
        written["novelty"] = write_novelty_map(run, model)
    video = cfg.get("video")
    if video is not None and bool(video.enabled):
        out = Path(video.dir) if video.get("dir") else run / "videos"
        try:
            videos = record_run(
                run, episodes=int(video.episodes), fmt=str(video.format), out_dir=out
            )
        except NotRenderable as exc:
            print(f"no video: {exc}")
        else:
            written["video"] = Path(videos[0]["path"]) if len(videos) == 1 else out
    return written


_CLI_KEYS = {
    "run": str,
    "episodes": count,
    "seed": int,
    "format": str,
    "out": str,
    "deterministic": to_bool,
    "fps": float,
    "every": int,
    "scale": float,
    "shift": str,
}
_USAGE = (
    "usage: python -m rndx.record run=<dir> [episodes=N] [seed=S] [format=mp4|gif] "
    "[out=<dir>] [deterministic=true|false] [fps=F] [every=K] [scale=X] [shift=<name>]"
)


def parse_cli(argv: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` arguments; unknown keys raise ValueError naming the valid ones."""
    return parse_key_values(argv, _CLI_KEYS)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: record, print one line per video; errors print one line and return 2."""
    try:
        args = parse_cli(sys.argv[1:] if argv is None else argv)
        run = args.pop("run")
        if "format" in args:
            args["fmt"] = args.pop("format")
        if "out" in args:
            args["out_dir"] = args.pop("out")
        videos = record_run(run, **args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}\n{_USAGE}", file=sys.stderr)
        return 2
    for v in videos:
        success = "n/a" if v["success"] is None else str(v["success"]).lower()
        alarm = "" if v["alarm_step"] is None else f" | alarm at step {v['alarm_step']}"
        print(
            f"{v['path']}: {v['length']} steps, return {v['return']:.3g}, success {success}{alarm}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
