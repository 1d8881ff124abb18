"""The scripted expert's planner on the small layout: which cells are free, which moves the
grid graph allows, where a plan's jump table points, goals next to a shelf, and the routes
the distribution shifts draw."""

from __future__ import annotations

import numpy as np
import pytest

from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.envs.experts import PLAN_MARGIN, AGVExpert, GridMap, planned_route


@pytest.fixture(scope="module")
def core() -> AGVCore:
    core = AGVCore(1, AGVConfig(layout="small"))
    core.seed([0])
    core.reset_envs(np.arange(1))
    return core


@pytest.fixture(scope="module")
def grid(core: AGVCore) -> GridMap:
    return GridMap.cached(core)


def _centres(grid: GridMap) -> np.ndarray:
    return grid.centre(np.arange(grid.rows * grid.cols))


def test_free_cells_are_where_the_vehicle_clears_every_box_by_the_margin(
    core: AGVCore, grid: GridMap
) -> None:
    """Free = the world's clearance at the cell centre is at least radius + margin (to the
    grid's half-cell accuracy), and every cell that clears it by a cell more is free."""
    need = core.cfg.radius + PLAN_MARGIN
    clear = core.world.clearance(_centres(grid))
    free = grid.free.ravel()
    assert clear[free].min() >= need - 0.5 * grid.res - 1e-9
    assert free[clear >= need + grid.res].all()
    assert 0.2 < free.mean() < 0.9


def test_moves_join_free_cells_and_never_cut_a_corner(grid: GridMap) -> None:
    src, dst = grid.graph.nonzero()
    free = grid.free.ravel()
    assert free[src].all() and free[dst].all()
    (r0, c0), (r1, c1) = np.divmod(src, grid.cols), np.divmod(dst, grid.cols)
    assert (np.maximum(np.abs(r1 - r0), np.abs(c1 - c0)) == 1).all()  # 8-connected
    diagonal = (r1 != r0) & (c1 != c0)
    assert diagonal.any()
    # a diagonal move needs both cells beside it free
    assert free[r0[diagonal] * grid.cols + c1[diagonal]].all()
    assert free[r1[diagonal] * grid.cols + c0[diagonal]].all()
    assert (grid.graph != grid.graph.T).nnz == 0  # symmetric


def test_a_plan_looks_ahead_the_lookahead_along_the_path(core: AGVCore, grid: GridMap) -> None:
    """lookahead 1.2 m = 12 moves of 0.1 m: along the bottom aisle towards a goal at its
    end, each cell's jump is the cell 1.2 m further down the aisle; the goal maps to itself."""
    expert = AGVExpert(core)
    field = expert.field(np.array([16.0, 2.0]))
    xs = np.arange(3.05, 12.1, 0.5)
    cells = grid.cell_of(np.column_stack([xs, np.full(len(xs), 2.05)]))
    np.testing.assert_allclose(
        grid.centre(field.jump[cells]), np.column_stack([xs + 1.2, np.full(len(xs), 2.05)])
    )
    assert field.jump[field.goal_cell] == field.goal_cell


def test_a_goal_next_to_a_shelf_is_planned_to_its_nearest_free_cell(
    core: AGVCore, grid: GridMap
) -> None:
    expert = AGVExpert(core)
    goal = np.array([4.5, 2.95])  # 5 cm from the shelf at y = 3: inside the inflated zone
    assert not grid.free.ravel()[grid.cell_of(goal[None])[0]]
    field = expert.field(goal)
    assert grid.free.ravel()[field.goal_cell]
    assert np.hypot(*(grid.centre(np.array([field.goal_cell]))[0] - goal)) < 0.6
    assert field.reachable.sum() > 0.9 * grid.free.sum()  # every aisle leads there


def test_a_planned_route_runs_from_a_to_b_over_free_cells(grid: GridMap) -> None:
    a, b = np.array([1.7, 1.6]), np.array([15.3, 10.4])
    route = planned_route(grid, a, b)
    np.testing.assert_allclose(route[0], a)
    np.testing.assert_allclose(route[-1], b)
    inner = route[1:-1]
    assert grid.free.ravel()[grid.cell_of(inner)].all()
    steps = np.hypot(*np.diff(inner, axis=0).T)
    assert steps.max() <= grid.res * np.sqrt(2) + 1e-9  # cell to neighbouring cell
