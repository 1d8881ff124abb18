"""Warehouse worlds: layouts as ASCII data, their static geometry and lookup structures.

A layout is a grid of 1 m cells (``cell`` metres each) read from ``configs/layouts/<name>.txt``
or generated from a seed. Walls and shelves become axis-aligned boxes (cells merged into
rectangles), which is what the lidar and the collision checks work on. Everything here is
computed once per layout and shared by every vehicle of a batched core.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rndx.paths import layouts_dir

WALL, SHELF, FLOOR = "#", "X", "."
START, GOAL, PICK, DROP = "S", "G", "P", "D"
LEGEND = {WALL, SHELF, FLOOR, START, GOAL, PICK, DROP}
FAR = 1.0e6  # coordinate of the padding box: no ray reaches it


@dataclass(frozen=True)
class Layout:
    """A parsed layout. ``grid[r, c]`` is the legend character of the cell whose lower-left
    corner is at ``(c * cell, (rows - 1 - r) * cell)``: row 0 of the text is the top (north)."""

    name: str
    grid: np.ndarray  # (rows, cols) array of single characters
    cell: float = 1.0

    @property
    def rows(self) -> int:
        return self.grid.shape[0]

    @property
    def cols(self) -> int:
        return self.grid.shape[1]

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) in metres."""
        return self.cols * self.cell, self.rows * self.cell

    def cells(self, chars: str) -> np.ndarray:
        """Centres (k, 2) in metres of the cells holding any of ``chars``."""
        r, c = np.nonzero(np.isin(self.grid, list(chars)))
        return np.stack([(c + 0.5) * self.cell, (self.rows - r - 0.5) * self.cell], axis=1)

    @property
    def solid(self) -> np.ndarray:
        """Boolean (rows, cols): wall or shelf."""
        return np.isin(self.grid, [WALL, SHELF])


def known_layouts() -> list[str]:
    return sorted(p.stem for p in layouts_dir().glob("*.txt")) + ["procedural"]


def parse_layout(text: str, name: str = "custom", cell: float = 1.0) -> Layout:
    """Parse ASCII layout text. Lines starting with ';' are comments."""
    lines = [ln.rstrip("\n") for ln in text.splitlines() if ln.strip() and not ln.startswith(";")]
    if not lines:
        raise ValueError(f"layout {name!r} is empty")
    widths = {len(ln) for ln in lines}
    if len(widths) != 1:
        raise ValueError(f"layout {name!r}: rows have different widths {sorted(widths)}")
    grid = np.array([list(ln) for ln in lines])
    bad = set(np.unique(grid)) - LEGEND
    if bad:
        raise ValueError(
            f"layout {name!r}: unknown characters {sorted(bad)}; allowed {sorted(LEGEND)}"
        )
    border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]])
    if not np.all(border == WALL):
        raise ValueError(f"layout {name!r} must be enclosed by '#' walls")
    if not np.any(grid == START):
        raise ValueError(f"layout {name!r} has no start region 'S'")
    return Layout(name=name, grid=grid, cell=cell)


def is_layout_path(name: str) -> bool:
    """True when ``name`` is a layout file's path (it ends in ``.txt`` or names a folder),
    not the name of a shipped layout."""
    return name.endswith(".txt") or "/" in name or "\\" in name


def layout_file(name: str | Path) -> Path:
    """The file of a layout given by its path; ValueError naming it when there is none."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise ValueError(
            f"layout file {str(name)!r} not found (relative paths start at "
            f"{str(Path.cwd())!r}); a layout is a path to a .txt file or one of "
            f"{known_layouts()}"
        )
    return path


def load_layout(name: str | Path, seed: int = 0) -> Layout:
    """A named layout from configs/layouts, ``"procedural"`` generated from ``seed``, or your
    own layout file: a path ending in ``.txt`` (relative to the working directory)."""
    if isinstance(name, Path) or is_layout_path(name):
        path = layout_file(name)
        return parse_layout(path.read_text(), name=path.stem)
    if name == "procedural":
        return procedural_layout(seed)
    path = layouts_dir() / f"{name}.txt"
    if not path.is_file():
        raise ValueError(
            f"unknown layout {name!r}; known layouts: {known_layouts()}, or a path to your "
            "own layout file ending in .txt"
        )
    return parse_layout(path.read_text(), name=name)


def procedural_layout(seed: int) -> Layout:
    """A random warehouse: blocks of back-to-back shelves separated by 2 m aisles.

    Size, block count and block lengths come from ``seed``; starts are on the west side,
    goals in aisle cells on the east side, pick and drop stations in opposite corners.
    """
    rng = np.random.default_rng(seed)
    n_rows = int(rng.integers(2, 5))  # rows of shelf blocks
    n_cols = int(rng.integers(2, 5))  # blocks per row
    lengths = rng.integers(3, 9, size=n_cols)
    width = int(2 + lengths.sum() + 2 * (n_cols - 1) + 4)
    height = 2 + 4 * n_rows + 2 + 2
    grid = np.full((height, width), FLOOR)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = WALL
    for i in range(n_rows):
        r0 = 3 + 4 * i
        c = 3
        for j in range(n_cols):
            if rng.random() < 0.85:  # a missing block opens a cross aisle
                grid[r0 : r0 + 2, c : c + lengths[j]] = SHELF
            c += lengths[j] + 2
    grid[1:3, 1:3] = START
    grid[-3:-1, 1:3] = PICK
    grid[-3:-1, -3:-1] = DROP
    free_east = [r for r in range(1, height - 1) if np.all(grid[r, -4:-1] == FLOOR)]
    for r in free_east:
        grid[r, -3:-1] = GOAL
    return Layout(name=f"procedural-{seed}", grid=grid)


def merge_boxes(mask: np.ndarray, rows: int, cell: float) -> np.ndarray:
    """Merge True cells into few axis-aligned rectangles (x0, y0, x1, y1) in metres.

    Horizontal runs per row first, then runs with identical extent stacked vertically.
    """
    runs: dict[tuple[int, int], list[int]] = {}
    boxes = []
    for r in range(mask.shape[0]):
        row = np.concatenate([[False], mask[r], [False]]).astype(np.int8)
        d = np.diff(row)
        starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
        for s, e in zip(starts, ends):
            runs.setdefault((s, e), []).append(r)
    for (s, e), rs in runs.items():
        # split the rows of one extent into contiguous stacks
        groups = np.split(np.array(rs), np.nonzero(np.diff(rs) != 1)[0] + 1)
        for g in groups:
            top, bottom = g[0], g[-1]
            boxes.append((s * cell, (rows - 1 - bottom) * cell, e * cell, (rows - top) * cell))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def box_distance(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Euclidean distance from points (..., 2) to boxes (..., 4); 0 inside. Broadcasts."""
    dx = np.maximum(np.maximum(boxes[..., 0] - points[..., 0], 0.0), points[..., 0] - boxes[..., 2])
    dy = np.maximum(np.maximum(boxes[..., 1] - points[..., 1], 0.0), points[..., 1] - boxes[..., 3])
    return np.hypot(dx, dy)


@dataclass
class World:
    """Static geometry of a layout plus the lookup tables the batched core needs.

    ``boxes`` (K+1, 4) holds every wall and shelf rectangle and, last, one padding box far away;
    ``candidates[r, c]`` lists the boxes any ray from cell (r, c) can hit within ``reach``
    metres (padded with the padding box), so the lidar tests a handful of boxes, not all.
    """

    layout: Layout
    reach: float
    boxes: np.ndarray = field(init=False)
    is_shelf: np.ndarray = field(init=False)
    candidates: np.ndarray = field(init=False)
    near: np.ndarray = field(init=False)
    lanes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        lay = self.layout
        walls = merge_boxes(lay.grid == WALL, lay.rows, lay.cell)
        shelves = merge_boxes(lay.grid == SHELF, lay.rows, lay.cell)
        pad = np.array([[FAR, FAR, FAR + 1.0, FAR + 1.0]])
        self.boxes = np.concatenate([walls, shelves, pad])
        self.is_shelf = np.r_[np.zeros(len(walls), bool), np.ones(len(shelves), bool), False]
        self.candidates = self._candidates(self.reach)
        self.near = self._candidates(1.5 * lay.cell)
        self.lanes = self._lanes()

    @property
    def size(self) -> tuple[float, float]:
        return self.layout.size

    def _candidates(self, reach: float) -> np.ndarray:
        lay = self.layout
        real = self.boxes[:-1]
        # distance between every cell rectangle and every box (rectangle-rectangle gap)
        r, c = np.mgrid[0 : lay.rows, 0 : lay.cols]
        x0, x1 = c * lay.cell, (c + 1) * lay.cell
        y0, y1 = (lay.rows - 1 - r) * lay.cell, (lay.rows - r) * lay.cell
        gx = np.maximum(np.maximum(real[:, 0] - x1[..., None], 0), x0[..., None] - real[:, 2])
        gy = np.maximum(np.maximum(real[:, 1] - y1[..., None], 0), y0[..., None] - real[:, 3])
        dist = np.hypot(gx, gy)
        close = dist <= reach  # (rows, cols, K)
        k_max = max(int(close.sum(-1).max()), 1)
        pad_index = len(self.boxes) - 1
        out = np.full((lay.rows, lay.cols, k_max), pad_index, dtype=np.int64)
        for idx in np.ndindex(lay.rows, lay.cols):
            ids = np.nonzero(close[idx])[0]
            # nearest first: a beam that hits a near box early skips the farther ones
            out[idx][: len(ids)] = ids[np.argsort(dist[idx][ids], kind="stable")]
        return out

    def _lanes(self) -> np.ndarray:
        """Straight aisle segments (L, 4) = (x0, y0, x1, y1) through the middle of 2-cell-wide
        free corridors, at least 4 m long: the routes of moving obstacles."""
        lay = self.layout
        free = ~lay.solid
        lanes = []
        for axis in (0, 1):
            f = free if axis == 0 else free.T
            for i in range(f.shape[0] - 1):
                both = f[i] & f[i + 1]  # two free rows side by side: an aisle
                row = np.concatenate([[0], both.astype(np.int8), [0]])
                d = np.diff(row)
                for s, e in zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]):
                    if (e - s) * lay.cell < 4.0:
                        continue
                    a, b = (s + 0.5) * lay.cell, (e - 0.5) * lay.cell
                    if axis == 0:  # horizontal: rows i, i+1 -> boundary between them
                        y = (lay.rows - 1 - i) * lay.cell
                        lanes.append((a, y, b, y))
                    else:  # vertical: columns i, i+1
                        x = (i + 1) * lay.cell
                        lanes.append((x, lay.rows * lay.cell - a, x, lay.rows * lay.cell - b))
        return np.array(lanes, dtype=np.float64).reshape(-1, 4)

    def cell_index(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of points (..., 2), clipped into the grid."""
        lay = self.layout
        c = (xy[..., 0] * (1.0 / lay.cell)).astype(np.int64)
        r = lay.rows - 1 - (xy[..., 1] * (1.0 / lay.cell)).astype(np.int64)
        r = np.minimum(np.maximum(r, 0), lay.rows - 1)
        return r, np.minimum(np.maximum(c, 0), lay.cols - 1)

    def clearance(self, xy: np.ndarray) -> np.ndarray:
        """Distance from points (n, 2) to the nearest wall or shelf."""
        from rndx.envs.agv.geometry import clearance

        return clearance(
            np.ascontiguousarray(xy, dtype=np.float64), self.boxes, self.near, self.layout.cell
        )

    def segment_clear(self, a: np.ndarray, b: np.ndarray, margin: float) -> bool:
        """True when the segment a-b keeps ``margin`` metres from every box (sampled every 5 cm)."""
        n = max(int(np.hypot(*(b - a)) / 0.05), 2)
        pts = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)
        return bool(np.all(self.clearance(pts) >= margin))


@functools.lru_cache(maxsize=32)
def _cached_world(name: str, seed: int, reach: float, stamp: tuple[int, int] | None) -> World:
    return World(load_layout(name, seed), reach)


def get_world(layout: str | Layout | Path, reach: float, seed: int = 0) -> World:
    """World for a layout name or a layout file's path (cached per process; a file until it
    changes), or a Layout."""
    if isinstance(layout, Layout):
        return World(layout, reach)
    stamp = None
    if isinstance(layout, Path) or is_layout_path(layout):
        path = Path(layout).expanduser()
        if path.is_file():  # else load_layout names the missing file
            st = path.stat()
            layout, stamp = str(path.resolve()), (st.st_mtime_ns, st.st_size)
        else:
            layout = str(layout)
    return _cached_world(layout, seed if layout == "procedural" else 0, float(reach), stamp)
