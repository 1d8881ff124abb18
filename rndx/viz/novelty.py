"""Where the agent found novelty: the intrinsic bonus over the warehouse floor.

Two pictures of one AGV run (2D or PyBullet), side by side in ``<run>/novelty_map.png``:

* the novelty map: the trained RND/RDD module's raw bonus at every floor position (a grid of
  poses, averaged over headings), for modules that see the pose (``intrinsic_input: pose``);
* the visitation density: where the training vehicles drove, counted by
  :class:`VisitationCounter` during training and kept in ``<run>/visitation.npz``.

The two should mirror each other: the bonus is low where the agent went often.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rndx.intrinsic.base import POSE_SPECS
from rndx.utils.io import atomic_save

VISITATION_FILE = "visitation.npz"
NOVELTY_FILE = "novelty_map.png"


def warehouse_core(venv: Any) -> Any:
    """The AGV core behind an SB3 VecEnv: the batched core of the 2D AGV envs, or env 0's
    single-vehicle core of a VecEnv of Bullet AGVs (every env shares the layout); None for
    other envs."""
    core = getattr(venv.unwrapped, "core", None)
    if core is not None:
        return core
    if not venv.has_attr("core"):  # (asks first: a SubprocVecEnv's worker dies on a miss)
        return None
    return venv.get_attr("core", indices=[0])[0]


class VisitationCounter(BaseCallback):
    """Count training poses (``info["pose"]``) on a grid of ``cells_per_m`` cells per metre.

    Inactive for envs without a warehouse core. Counts are saved with each checkpoint
    (:meth:`save`, called by the run's checkpoint callback) and at the end of training; a
    resumed run adds to the saved counts.
    """

    def __init__(self, path: str | Path, cells_per_m: int = 4) -> None:
        super().__init__()
        self.path = Path(path)
        self.cells_per_m = cells_per_m
        self.counts: np.ndarray | None = None
        self._at_rollout_start: np.ndarray | None = None

    def _on_training_start(self) -> None:
        core = warehouse_core(self.training_env)
        if core is None:
            return
        w, h = core.world.layout.size
        shape = (int(np.ceil(h * self.cells_per_m)), int(np.ceil(w * self.cells_per_m)))
        self.counts = np.zeros(shape, dtype=np.int64)
        if self.path.is_file():
            saved = np.load(self.path)
            if saved["counts"].shape == shape:
                self.counts += saved["counts"]
        self._at_rollout_start = self.counts.copy()

    def _on_rollout_start(self) -> None:
        if self.counts is not None:
            self._at_rollout_start = self.counts.copy()

    def _on_step(self) -> bool:
        if self.counts is None:
            return True
        infos = self.locals.get("infos") or []
        if not infos or "pose" not in infos[0]:
            return True
        xy = np.stack([info["pose"][:2] for info in infos])
        rows, cols = self.counts.shape
        c = np.clip((xy[:, 0] * self.cells_per_m).astype(np.int64), 0, cols - 1)
        r = np.clip((xy[:, 1] * self.cells_per_m).astype(np.int64), 0, rows - 1)
        np.add.at(self.counts, (r, c), 1)
        return True

    def _on_training_end(self) -> None:
        self.save()

    def save(self, at_rollout_start: bool = False) -> None:
        """Write the counts so far, or (``at_rollout_start``) as they were when the rollout
        under way began: an interrupted run's checkpoint counts only up to there."""
        counts = self._at_rollout_start if at_rollout_start else self.counts
        if counts is not None:
            save_visitation(self.path, counts, self.cells_per_m)


def save_visitation(path: str | Path, counts: np.ndarray, cells_per_m: int) -> Path:
    """Write visit counts (rows from y = 0 upwards) atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, counts=counts, cells_per_m=cells_per_m)

    return atomic_save(write, path)


def novelty_grid(
    module: Any,
    world: Any,
    resolution: float = 0.1,
    headings: int = 8,
    selector: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The raw bonus of ``module`` (its ``compute`` on (x, y, cos, sin) poses, or on what
    ``selector`` makes of them, e.g. tiles) over the floor.

    :return: (bonus, solid): (rows, cols) arrays with row 0 at y = 0; bonus is the mean over
        ``headings`` evenly spaced headings, NaN inside walls and shelves.
    """
    if resolution <= 0 or headings < 1:
        raise ValueError(f"resolution={resolution!r} must be > 0 and headings={headings!r} >= 1")
    w, h = world.layout.size
    xs = np.arange(resolution / 2, w, resolution)
    ys = np.arange(resolution / 2, h, resolution)
    gx, gy = np.meshgrid(xs, ys)
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    angles = np.linspace(0.0, 2 * np.pi, headings, endpoint=False)
    poses = np.concatenate(
        [
            np.column_stack([xy, np.full(len(xy), np.cos(a)), np.full(len(xy), np.sin(a))])
            for a in angles
        ]
    ).astype(np.float32)
    inputs = poses if selector is None else selector.from_poses(poses)
    bonus = np.asarray(module.compute(inputs), dtype=np.float64).reshape(headings, len(xy))
    bonus = bonus.mean(axis=0).reshape(gy.shape)
    r, c = world.cell_index(xy)
    solid = world.layout.solid[r, c].reshape(gy.shape)
    bonus[solid] = np.nan
    return bonus, solid


def supports_novelty_map(cfg: Any) -> bool:
    """True for runs of an AGV env (2D or PyBullet) whose agent has an intrinsic module on
    the pose."""
    from rndx.envs import WAREHOUSE_IDS

    agent = cfg.agent
    intrinsic = agent.get("intrinsic")
    return (
        str(cfg.env.id) in WAREHOUSE_IDS
        and str(agent.algo) == "intrinsic_ppo"
        and intrinsic is not None
        and intrinsic.get("intrinsic_input") in POSE_SPECS
    )


def write_novelty_map(run_dir: str | Path, model: Any = None) -> Path:
    """Draw ``<run>/novelty_map.png`` (novelty beside visitation density) and return its path.

    :param model: the run's trained agent; None loads ``<run>/model.zip``.
    :raises ValueError: if the run is not an AGV run with a pose-input intrinsic module.
    """
    import gymnasium as gym

    from rndx.config import to_dict
    from rndx.evaluate import load_model_file, load_run_config

    run = Path(run_dir)
    cfg = load_run_config(run)
    if not supports_novelty_map(cfg):
        raise ValueError(
            f"no novelty map for {str(run)!r}: it needs an AGV env (rndx/AGV*, "
            "rndx/BulletAGVWarehouse-v0) and agent "
            "algo intrinsic_ppo with intrinsic_input: pose or pose_tiles"
        )
    if model is None:
        model = load_model_file(str(cfg.agent.algo), run / "model.zip")
    env = gym.make(str(cfg.env.id), **(to_dict(cfg.env.get("kwargs")) or {}))
    world = env.unwrapped.core.world
    env.close()
    bonus, solid = novelty_grid(model.intrinsic, world, selector=model.selector)
    visits = None
    if (run / VISITATION_FILE).is_file():
        visits = np.load(run / VISITATION_FILE)["counts"]
    title = f"{cfg.env.name} / {cfg.agent.name}, seed {cfg.seed}, {model.num_timesteps} steps"
    return plot_novelty(bonus, visits, world.layout.size, run / NOVELTY_FILE, title)


def plot_novelty(
    bonus: np.ndarray,
    visits: np.ndarray | None,
    size: tuple[float, float],
    path: str | Path,
    title: str = "",
) -> Path:
    """Save the heatmap PNG: bonus (NaN = solid, grey) and, when given, visit density."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    w, h = size
    extent = (0.0, w, 0.0, h)
    panels = 1 if visits is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 5.2 * h / w + 0.9), squeeze=False)
    cmap = plt.get_cmap("viridis").with_extremes(bad=(0.45, 0.45, 0.45))
    im = axes[0, 0].imshow(np.ma.masked_invalid(bonus), origin="lower", extent=extent, cmap=cmap)
    axes[0, 0].set_title("intrinsic bonus (raw, mean over headings)", fontsize=9)
    fig.colorbar(im, ax=axes[0, 0], fraction=0.046, pad=0.02)
    if visits is not None:
        density = visits / max(visits.sum(), 1)
        shown = np.ma.masked_where(visits == 0, density)
        cmap2 = plt.get_cmap("magma").with_extremes(bad=(0.93, 0.93, 0.93))
        vmin = shown.min() if shown.count() else 1e-6
        vmax = shown.max() if shown.count() else 1.0
        im2 = axes[0, 1].imshow(
            shown,
            origin="lower",
            extent=extent,
            cmap=cmap2,
            norm=LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.01)),
        )
        axes[0, 1].set_title(f"visitation density ({int(visits.sum())} steps, log)", fontsize=9)
        fig.colorbar(im2, ax=axes[0, 1], fraction=0.046, pad=0.02)
    for ax in axes[0]:
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    dest = atomic_save(lambda p: fig.savefig(p, dpi=100), path)
    plt.close(fig)
    return dest
