"""Videos (rndx.record), learning-curve reports (rndx.report) and the novelty map, on tiny
runs trained here; the monitor path uses a stand-in ``rndx.monitors`` that follows the contract."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from gymnasium import spaces
from hydra import compose, initialize_config_dir

from rndx.paths import config_dir
from rndx.record import main as record_main
from rndx.record import parse_cli, record_run
from rndx.report import main as report_main
from rndx.report import read_scalars, write_report
from rndx.train import train
from rndx.viz.novelty import novelty_grid

pytestmark = pytest.mark.timeout(600)

TINY = [
    "experiment=smoke",
    "total_timesteps=128",
    "n_envs=2",
    "agent.ppo.n_steps=32",
    "agent.ppo.batch_size=32",
    "agent.ppo.n_epochs=1",
    "eval.episodes=1",
    "env.max_episode_steps=20",
]


def _tiny_run(root: Path, seed: int, *extra: str) -> Path:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"seed={seed}", f"run_dir={root}/s{seed}", *extra])
    return train(cfg)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two seeds of the same tiny recipe; the first records its end-of-training video."""
    root = tmp_path_factory.mktemp("runs")
    return [_tiny_run(root, 0), _tiny_run(root, 1, "video.enabled=false")]


def _read_video(path: Path) -> list[np.ndarray]:
    reader = imageio.get_reader(path)
    try:
        return [frame for frame in reader]  # list(reader) preallocates its inf length
    finally:
        reader.close()


def test_training_ends_with_video_novelty_map_and_visit_counts(runs: list[Path]) -> None:
    run, no_video = runs
    videos = sorted((run / "videos").glob("*.mp4"))
    assert len(videos) == 1
    # the episode the evaluation played first (seed + 1000: eval.seed is unset)
    assert videos[0].name == "episode_1000.mp4"
    frames = _read_video(videos[0])
    assert 2 <= len(frames) <= 21  # reset frame + at most 20 steps
    assert not (no_video / "videos").exists()  # video.enabled=false switches it off
    assert (run / "novelty_map.png").stat().st_size > 10_000
    counts = np.load(run / "visitation.npz")["counts"]
    assert counts.sum() == 128  # every training step of both envs, counted once


def test_recorded_video_has_one_frame_per_step_and_real_content(
    runs: list[Path], tmp_path: Path
) -> None:
    videos = record_run(runs[0], episodes=2, seed=5, out_dir=tmp_path)
    assert [Path(v["path"]).name for v in videos] == ["episode_5.mp4", "episode_6.mp4"]
    for v in videos:
        frames = _read_video(Path(v["path"]))
        assert len(frames) == v["length"] + 1 == v["frames"]
        assert 1 <= v["length"] <= 20
        h, w, _ = frames[0].shape
        assert (h, w) == (288, 432)  # the small layout at 24 px/m, no strip without a monitor
        for f in frames:
            assert f.std() > 20  # shelves, walls and floor, not a blank image
    gif = record_run(runs[0], episodes=1, seed=5, fmt="gif", out_dir=tmp_path, every=2, scale=0.5)
    gif_frames = _read_video(Path(gif[0]["path"]))
    assert len(gif_frames) == (videos[0]["length"] + 1 + 1) // 2
    assert gif_frames[0].shape[:2] == (144, 216)


def test_record_with_a_run_monitor_draws_the_strip(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<run>/monitor.pt makes record import rndx.monitors.load_monitor and wrap the policy."""
    loaded = {}

    class FakeMonitored:
        def __init__(self, policy):
            self.policy, self.t = policy, 0

        def reset(self) -> None:
            self.t = 0

        def predict(self, obs, deterministic=True):
            action, _ = self.policy.predict(obs, deterministic=deterministic)
            t, self.t = self.t, self.t + 1
            fired = t >= 3
            return action, {
                "rnd_oe": 0.1 * t,
                "ace": 0.05,
                "rnd_oe_threshold": 0.25,
                "ace_threshold": 0.5,
                "alarm": fired,
                "alarm_step": 3 if fired else None,
                "step": t,
            }

    def load_monitor(path, policy):
        loaded["path"] = Path(path)
        return FakeMonitored(policy)

    fake = types.ModuleType("rndx.monitors")
    fake.load_monitor = load_monitor
    monkeypatch.setitem(sys.modules, "rndx.monitors", fake)
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "model.zip"):
        (run / name).write_bytes((runs[0] / name).read_bytes())
    (run / "monitor.pt").write_bytes(b"calibrated")

    videos = record_run(run, episodes=1, seed=5, out_dir=tmp_path / "v")
    assert loaded["path"] == run / "monitor.pt"
    frames = _read_video(Path(videos[0]["path"]))
    assert len(frames) == videos[0]["length"] + 1
    assert frames[0].shape[:2] == (288 + 96, 432)  # frame + strip
    if videos[0]["length"] > 3:
        assert videos[0]["alarm_step"] == 3
        strip = frames[-1][288:].astype(int)
        reddish = (strip[..., 0] > 180) & (strip[..., 1] < 90) & (strip[..., 2] < 90)
        assert reddish.any()  # the alarm marker (H.264 shifts colours slightly)


def test_report_on_two_runs_writes_png_and_table(runs: list[Path], tmp_path: Path) -> None:
    written = write_report([runs[0].parent], tmp_path / "rep")
    png = written["curves"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = written["table"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| agv_warehouse / ppo_rnd"))
    assert "| 0, 1 |" in row  # both seeds in one group
    # the return column is the mean over seeds of each run's last logged value
    lasts = [read_scalars(r)["rollout/ep_rew_mean"][1][-1] for r in runs]
    mean = float(np.mean(lasts))
    assert re.search(rf"\| {mean:.3g} ± ", row), (row, mean)


def test_report_on_a_folder_leaves_out_runs_without_curves(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An imitation run (TensorBoard logs without env episodes) beside RL runs: the report
    draws the RL runs and names the one it left out."""
    import shutil

    folder = tmp_path / "runs"
    for r in runs:
        shutil.copytree(r, folder / r.name)
    bc = folder / "bc"
    shutil.copytree(runs[1], bc)
    shutil.rmtree(bc / "tb")
    (bc / "tb").mkdir()
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(bc / "tb" / "bc_1")) as writer:
        writer.add_scalar("train/bc_loss", 0.5, 1)
    assert report_main([str(folder), f"out={tmp_path / 'rep'}"]) == 0
    captured = capsys.readouterr()
    assert "note: left out 1 run(s) that logged none of" in captured.err
    assert repr(str(bc)) in captured.err
    assert "| 0, 1 |" in captured.out  # both RL seeds reported
    with pytest.warns(UserWarning, match="left out 1 run"):
        write_report([folder], tmp_path / "rep2")


def test_report_keeps_runs_of_other_settings_apart(runs: list[Path], tmp_path: Path) -> None:
    # a seed-0 run with a longer budget is another experiment, not a third seed of the two
    longer = _tiny_run(tmp_path, 0, "total_timesteps=256")
    md = write_report([runs[0].parent, longer], tmp_path / "rep")["table"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| agv_warehouse / ppo_rnd")]
    assert len(rows) == 2, md
    assert rows[0].startswith("| agv_warehouse / ppo_rnd [total_timesteps=128] | 0, 1 | 128 ")
    assert rows[1].startswith("| agv_warehouse / ppo_rnd [total_timesteps=256] | 0 | 256 ")


def test_bad_run_dirs_give_clear_errors(
    runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert record_main([f"run={missing}"]) == 2
    assert f"run dir {str(missing)!r} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert record_main([f"run={tmp_path / 'empty'}"]) == 2
    assert "is not an rndx run dir" in capsys.readouterr().err
    assert record_main([f"run={runs[0]}", "format=avi"]) == 2
    assert "format='avi'; allowed: mp4, gif" in capsys.readouterr().err

    assert report_main([str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "holds none" in capsys.readouterr().err
    no_logs = tmp_path / "no_logs"
    no_logs.mkdir()
    (no_logs / "config.yaml").write_bytes((runs[0] / "config.yaml").read_bytes())
    assert report_main([str(no_logs)]) == 2
    assert "has no TensorBoard logs" in capsys.readouterr().err


def test_novelty_grid_follows_the_module_and_masks_solid_cells() -> None:
    import gymnasium as gym

    env = gym.make("rndx/AGVWarehouse-v0")
    world = env.unwrapped.core.world
    env.close()

    class XModule:  # bonus = x coordinate of the pose
        def compute(self, poses):
            return poses[:, 0]

    bonus, solid = novelty_grid(XModule(), world, resolution=0.5, headings=4)
    w, h = world.layout.size
    assert bonus.shape == (int(h / 0.5), int(w / 0.5))
    assert np.isnan(bonus[solid]).all() and solid[0].all()  # the bottom wall
    free = ~solid
    xs = np.broadcast_to(np.arange(0.25, w, 0.5), bonus.shape)
    np.testing.assert_allclose(bonus[free], xs[free], rtol=1e-6)
    # with a pose_tiles selector the module sees tiles: bonus = index of the active x tile
    from rndx.intrinsic import InputSelector

    sel = InputSelector("pose_tiles", extent=(w, h), tile_size=1.0, tilings=1)
    ny = int(h) + 1

    class TileModule:
        def compute(self, x):
            return x.argmax(axis=1) // ny  # one active cell per row: its x index

    tiles, _ = novelty_grid(TileModule(), world, resolution=0.5, headings=1, selector=sel)
    np.testing.assert_array_equal(tiles[free], np.floor(xs[free]))


def test_monitor_record_accepts_the_contract_shapes() -> None:
    from rndx.record import monitor_record

    rec = {
        "rnd_oe": np.float32(0.5),
        "ace": np.array([0.25]),
        "rnd_oe_threshold": 1.0,
        "ace_threshold": 2.0,
        "alarm": np.bool_(True),
        "alarm_step": 4,
        "step": 7,
    }
    for shape in (rec, [rec], {"monitor": rec}):
        out = monitor_record(shape)
        assert out["rnd_oe"] == 0.5 and out["ace"] == 0.25 and out["alarm"] is True
    with pytest.raises(ValueError, match="without the monitor keys"):
        monitor_record({"rnd_oe": 1.0})
    with pytest.raises(ValueError, match="NoneType"):
        monitor_record(None)


def test_record_under_a_named_shift_and_unknown_shift(runs: list[Path], tmp_path: Path) -> None:
    """shift=<name> records under rndx.envs.shifts; an unknown name lists the known ones."""
    v = record_run(runs[0], episodes=1, seed=5, out_dir=tmp_path, shift="actuator_loss")
    assert Path(v[0]["path"]).exists() and v[0]["length"] >= 1
    with pytest.raises(ValueError, match="unknown shift 'icy'.*actuator_loss"):
        record_run(runs[0], episodes=1, seed=5, out_dir=tmp_path, shift="icy")
    assert parse_cli(["run=r", "shift=crowd"])["shift"] == "crowd"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, r"seed=-1 must be an integer >= 0"),
        ({"fps": 0.0}, r"fps=0.0 must be > 0"),
        ({"fps": float("inf")}, r"fps=inf must be a finite number > 0"),
        ({"fps": float("nan")}, r"fps=nan must be a finite number > 0"),
    ],
)
def test_bad_record_values_fail_before_any_rollout(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs, message
) -> None:
    import rndx.record

    def no_rollout(*args, **kw):
        raise AssertionError("rolled out before checking the settings")

    monkeypatch.setattr(rndx.record, "play_episode", no_rollout)
    with pytest.raises(ValueError, match=message):
        record_run(runs[0], episodes=1, out_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


class _DictPoint(gym.Env):
    """A goal-conditioned point (Dict observations, like PointMaze) that renders frames."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        box = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict({"observation": box, "desired_goal": box})
        self.action_space = box

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": self.p.copy(), "desired_goal": np.zeros(2, np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.p = self.np_random.uniform(-0.8, 0.8, 2).astype(np.float32)
        return self._obs(), {}

    def step(self, action):
        self.p = np.clip(self.p + 0.1 * np.asarray(action, np.float32), -1.0, 1.0)
        success = bool(np.linalg.norm(self.p) < 0.1)
        return self._obs(), float(success), success, False, {"is_success": success}

    def render(self) -> np.ndarray:
        frame = np.zeros((32, 32, 3), np.uint8)
        r, c = ((1.0 - self.p[::-1]) * 15.5).astype(int)
        frame[r, c] = 255
        return frame


def test_a_dict_observation_env_trains_and_records(tmp_path: Path) -> None:
    """Training flattens Dict observations (PointMaze's kind); the end-of-training video and
    rndx.record must flatten them too, or the policy rejects the observation."""
    env_id = "rndx_test/DictPoint-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=_DictPoint, max_episode_steps=20)
    run = _tiny_run(tmp_path, 0, "env=gym", f"env.id={env_id}", "agent=ppo")
    assert len(list((run / "videos").glob("*.mp4"))) == 1
    written = record_run(run, episodes=1, out_dir=tmp_path / "rec", fmt="gif")
    assert written[0]["frames"] >= 2 and Path(written[0]["path"]).is_file()


def test_bullet_agv_runs_get_the_novelty_map_and_visit_counts(tmp_path: Path) -> None:
    """The PyBullet AGV has the 2D env's core and world: RND on its pose is drawn over the
    same floor, and its training poses are counted (env 0's core gives the layout)."""
    pytest.importorskip("pybullet")
    run = _tiny_run(tmp_path, 0, "env=bullet_agv_warehouse", "agent=ppo_rnd", "video.enabled=false")
    assert (run / "novelty_map.png").stat().st_size > 10_000
    counts = np.load(run / "visitation.npz")["counts"]
    assert counts.sum() == 128
    assert counts.shape == (12 * 4, 18 * 4)  # the small layout, 4 cells per metre


def _copy_run(src: Path, dest: Path, **changes: Any) -> Path:
    """config.yaml (with dotted-key changes) and model.zip of ``src`` in a new run dir."""
    from omegaconf import OmegaConf

    dest.mkdir(parents=True)
    cfg = OmegaConf.load(src / "config.yaml")
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=False)
    (dest / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (dest / "model.zip").write_bytes((src / "model.zip").read_bytes())
    return dest


def test_record_plays_seeded_episodes_under_the_monitor_from_their_start(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episode k: seed + k, the monitored policy reset first, episode_start True on its first
    step only, ``deterministic`` as asked; its summary is the env's own (return summed over
    the steps, success from is_success: a collision is no success); its strip spans the env's
    step limit; the video's fps is the env's render fps over ``every``."""
    import rndx.record

    kwargs = {"layout": "small", "reward": "dense"}
    run = _copy_run(
        runs[0], tmp_path / "run", **{"env.max_episode_steps": 120, "env.kwargs": kwargs}
    )
    (run / "monitor.pt").write_bytes(b"calibrated")
    log: dict[str, Any] = {"resets": 0, "calls": []}

    class Forward:  # drives straight into a shelf, under a stand-in monitor
        def __init__(self) -> None:
            self.t = 0

        def reset(self) -> None:
            log["resets"] += 1
            self.t = 0

        def predict(self, obs, episode_start=None, deterministic=True):
            start = bool(np.asarray(episode_start).reshape(-1)[0])
            log["calls"].append((np.array(obs, copy=True), start, deterministic))
            t, self.t = self.t, self.t + 1
            rec = {"rnd_oe": 0.1, "ace": 0.1, "rnd_oe_threshold": 1.0, "ace_threshold": 1.0}
            return np.array([1.0, 0.0], np.float32), {
                **rec,
                "alarm": t >= 2,
                "alarm_step": 2 if t >= 2 else None,
                "step": t,
            }

    fake = types.ModuleType("rndx.monitors")
    fake.load_monitor = lambda path, policy: Forward()
    monkeypatch.setitem(sys.modules, "rndx.monitors", fake)
    strips, rates = [], []
    strip_frames, write_video = rndx.record.strip_frames, rndx.record.write_video

    def spy_strip(frames, history, height, horizon):
        strips.append((len(history), horizon))
        return strip_frames(frames, history, height, horizon)

    def spy_write(frames, path, fps):
        rates.append(fps)
        return write_video(frames, path, fps)

    monkeypatch.setattr(rndx.record, "strip_frames", spy_strip)
    monkeypatch.setattr(rndx.record, "write_video", spy_write)
    videos = record_run(
        run,
        episodes=2,
        seed=5,
        deterministic=False,
        fmt="gif",
        every=4,
        scale=0.25,
        out_dir=tmp_path / "v",
    )
    assert log["resets"] == 2
    env = gym.make("rndx/AGVWarehouse-v0", max_episode_steps=120, **kwargs)
    calls = log["calls"]
    for k, v in enumerate(videos):
        ep, calls = calls[: v["length"]], calls[v["length"] :]
        assert [start for _, start, _ in ep] == [True] + [False] * (v["length"] - 1)
        assert {det for *_, det in ep} == {False}
        obs, _ = env.reset(seed=5 + k)
        np.testing.assert_allclose(ep[0][0], obs)
        ret, n, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
            ret, n, done = ret + reward, n + 1, terminated or truncated
        assert info["collision"] and n < 120  # the replay crashed too
        assert (v["length"], v["success"], v["alarm_step"]) == (n, False, 2)
        assert v["return"] == pytest.approx(ret)
    env.close()
    assert not calls and len({v["length"] for v in videos}) == 2  # two different episodes
    assert strips == [(v["length"], 120) for v in videos]  # x axis: the step limit
    assert rates == [pytest.approx(10 / 4)] * 2
    # shift=<name>: the episodes start as that shift's env does
    log["calls"].clear()
    record_run(
        run,
        episodes=1,
        seed=5,
        shift="goal_shift",
        fmt="gif",
        every=8,
        scale=0.25,
        out_dir=tmp_path / "s",
    )
    from rndx.envs.shifts import make_shifted_env

    shifted = make_shifted_env("rndx/AGVWarehouse-v0", "goal_shift", 5, **kwargs)
    want, _ = shifted.reset(seed=5)
    shifted.close()
    np.testing.assert_allclose(log["calls"][0][0], want)
    assert not np.allclose(want, gym.make("rndx/AGVWarehouse-v0", **kwargs).reset(seed=5)[0])


def test_report_columns_hold_the_last_logged_values_and_eval_json(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two seeds with known logs: each column is its own figure (mean ± std over seeds), the
    last value logged (also when a later log folder holds it), each run's eval.json; the
    success panel is drawn on [0, 1], curves up to the shorter run's end."""
    import json

    from torch.utils.tensorboard import SummaryWriter

    import rndx.report

    logs = {  # seed: ({tag: [(step, value)]}, eval.json)
        0: (
            {
                "rollout/success_rate": [(10, 0.9), (20, 0.1)],
                "rollout/ep_rew_mean": [(10, 1.0), (20, 5.0)],
            },
            {"success_rate": 0.25, "mean_return": -3.5},
        ),
        1: (
            {
                "rollout/success_rate": [(10, 0.8), (30, 0.3)],
                "rollout/ep_rew_mean": [(10, 2.0), (30, 9.0)],
            },
            {"success_rate": 0.75, "mean_return": -1.5},
        ),
    }
    dirs = []
    for seed, (scalars, ev) in logs.items():
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "config.yaml").write_bytes((runs[seed] / "config.yaml").read_bytes())
        (run / "eval.json").write_text(json.dumps(ev))
        for part, points in enumerate(([0], [1])):  # a resumed run: two log folders
            with SummaryWriter(str(run / "tb" / f"PPO_{part + 1}")) as writer:
                for tag, series in scalars.items():
                    for i in points:
                        writer.add_scalar(tag, series[i][1], series[i][0])
        dirs.append(run)
    drawn = {}
    plot_curves = rndx.report.plot_curves

    def spy(panels, path, title="", ylims=None):
        drawn.update({label: (groups, lim) for (label, groups), lim in zip(panels, ylims)})
        return plot_curves(panels, path, title, ylims)

    monkeypatch.setattr(rndx.report, "plot_curves", spy)
    md = write_report(dirs, tmp_path / "rep")["table"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| agv_warehouse / ppo_rnd"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:] == ["0, 1", "20-30", "0.2 ± 0.1", "7 ± 2", "0.5 ± 0.25", "-2.5 ± 1"]
    success = drawn["success rate (training episodes)"]
    assert success[1] == (-0.02, 1.02) and drawn["episode return"][1] is None
    steps, mean, lo, hi = rndx.report.aggregate(next(iter(success[0].values())))
    assert (steps[0], steps[-1]) == (10, 20)  # the common span of both seeds
    # at step 20: seed 0 logged 0.1, seed 1 is half-way from 0.8 (step 10) to 0.3 (step 30)
    np.testing.assert_allclose((mean[-1], lo[-1], hi[-1]), (0.325, 0.1, 0.55), atol=1e-9)


def test_record_defaults_to_the_runs_evaluation_seed_and_mode(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without seed= and deterministic=, the episodes are the evaluation's: eval.seed
    (or seed + 1000) and eval.deterministic of the run's config."""
    import rndx.record

    played = []

    class Played(Exception):
        pass

    def first_episode(env, policy, seed, deterministic, monitored):
        played.append((seed, deterministic, monitored))
        raise Played

    monkeypatch.setattr(rndx.record, "play_episode", first_episode)
    changes = {"eval.seed": 77, "eval.deterministic": False}
    run = _copy_run(runs[0], tmp_path / "run", **changes)
    with pytest.raises(Played):
        record_run(run, out_dir=tmp_path / "v")
    with pytest.raises(Played):
        record_run(runs[0], out_dir=tmp_path / "v")
    assert played == [(77, False, False), (1000, True, False)]
