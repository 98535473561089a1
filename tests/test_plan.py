"""The inference plan: merged same-model windows that tile every frame once, derived from parameters a client
checks."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stdo.grid import Grid
from stdo.plan import PlanError, base_shape, check_parameters, choose_shapes, digest, make_plan

GRID = Grid(54, 90, 4, 6)  # uneven patches: 13-14 x 15 LR pixels
MARGIN = 4


def _model_map(seed: int = 0, frames: int = 5, models: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, models, (GRID.rows, GRID.cols))
    maps = np.repeat(base[None], frames, 0).astype(np.uint8)
    maps[-1] = rng.integers(0, models, (GRID.rows, GRID.cols))  # one frame changes
    return maps


def _check_tiling(plan, maps, grid: Grid, margin: int) -> None:
    """Every frame's kept rectangles tile it exactly once, each inside its window with the margin around it (clipped
    at the border), and each kept patch served by the model its map names."""
    for t, cmap in enumerate(maps):
        cover = np.zeros((grid.height, grid.width), int)
        for _, model, shape, y, x, top, left, h, w in plan.frame_runs(t):
            sh, sw = plan.shapes[shape]
            assert 0 <= y and 0 <= x and y + sh <= grid.height and x + sw <= grid.width
            assert y <= max(top - margin, 0) and x <= max(left - margin, 0)
            assert min(top + h + margin, grid.height) <= y + sh and min(left + w + margin, grid.width) <= x + sw
            rows = np.searchsorted(grid.row_edges, [top, top + h])
            cols = np.searchsorted(grid.col_edges, [left, left + w])
            assert (cmap[rows[0] : rows[1], cols[0] : cols[1]] == model).all()
            cover[top : top + h, left : left + w] += 1
        assert (cover == 1).all()


def test_a_plan_tiles_every_frame_once():
    maps = _model_map()
    shapes = choose_shapes(maps, GRID, MARGIN, 3)
    assert shapes[0] == base_shape(GRID, MARGIN) and 1 <= len(shapes) <= 3
    plan = make_plan(maps, GRID, MARGIN, shapes)
    _check_tiling(plan, maps, GRID, MARGIN)
    assert plan.num_plans == 2 and plan.frame_plan.tolist() == [0, 0, 0, 0, 1]  # stored once each, in frame order
    for t, cmap in enumerate(maps):
        for _, model, shape, y, x, top, left, h, w in plan.frame_runs(t):
            sh, sw = shapes[shape]
            rows = np.searchsorted(GRID.row_edges, [top, top + h])
            cols = np.searchsorted(GRID.col_edges, [left, left + w])
            assert (cmap[rows[0] : rows[1], cols[0] : cols[1]] == model).all()  # the right model
            lo_y, lo_x = max(top - MARGIN, 0), max(left - MARGIN, 0)  # margins inside the window
            assert y <= lo_y and x <= lo_x and min(top + h + MARGIN, GRID.height) <= y + sh
            assert min(left + w + MARGIN, GRID.width) <= x + sw


def test_merging_cuts_the_runs_and_pixels():
    maps = np.zeros((3, GRID.rows, GRID.cols), np.uint8)
    maps[:, :, 3:] = 1  # two halves
    one_window = make_plan(maps, GRID, MARGIN, (base_shape(GRID, MARGIN),)).stats(GRID)
    merged = make_plan(maps, GRID, MARGIN, choose_shapes(maps, GRID, MARGIN, 3)).stats(GRID)
    assert one_window["runs_per_frame"] == GRID.num_patches
    assert merged["runs_per_frame"] <= 4 and merged["pixels_run_per_needed"] < 0.6 * one_window["pixels_run_per_needed"]
    whole = make_plan(maps, GRID, MARGIN, (base_shape(GRID, MARGIN), (GRID.height, GRID.width))).stats(GRID)
    assert whole["runs_per_frame"] == 2 and whole["pixels_run_per_needed"] == 2  # each model once on the frame


def test_a_shape_no_window_uses_is_not_shipped():
    """One model on every patch (jstdo) runs once on the whole frame: the per-patch base shape would be a TFLite
    file downloaded for nothing, so the plan ships the frame's shape alone, with the same windows."""
    joint = np.zeros((3, GRID.rows, GRID.cols), np.uint8)
    shapes = choose_shapes(joint, GRID, MARGIN, 3)
    assert shapes == ((GRID.height, GRID.width),)
    with_base = make_plan(joint, GRID, MARGIN, (base_shape(GRID, MARGIN), (GRID.height, GRID.width)))
    alone = make_plan(joint, GRID, MARGIN, shapes)
    def windows(plan):
        return [[(m, plan.shapes[shape], *rest) for _, m, shape, *rest in plan.frame_runs(t)] for t in range(3)]

    assert windows(alone) == windows(with_base) and alone.stats(GRID)["runs_per_frame"] == 1
    _check_tiling(alone, joint, GRID, MARGIN)
    check_parameters([list(s) for s in shapes], MARGIN, GRID)  # a client accepts it
    assert choose_shapes(_model_map(), GRID, MARGIN, 3)[0] == base_shape(GRID, MARGIN)  # patches still need it


def test_shipped_parameters_are_checked():
    assert check_parameters([[22, 23], [54, 90]], MARGIN, GRID) == ((22, 23), (54, 90))
    for shapes, margin, message in [([[21, 23]], MARGIN, "no shape holds one patch with its margin of 4"),
                                    ([[55, 90]], MARGIN, "larger than the frame"), ([[1.5, 4]], MARGIN, "pairs"),
                                    ([], MARGIN, "pairs"), ("22x23", MARGIN, "pairs"), ([[22, 23]] * 9, MARGIN, "pairs"),
                                    ([[22, 23]], -1, "margin must be"), ([[22, 23]], True, "margin must be")]:
        with pytest.raises(PlanError, match=message):
            check_parameters(shapes, margin, GRID)


def test_the_digest_names_the_runs():
    maps = _model_map()
    plan = make_plan(maps, GRID, MARGIN, choose_shapes(maps, GRID, MARGIN, 3))
    assert digest(plan, 4) == digest(make_plan(maps, GRID, MARGIN, plan.shapes), 4) != digest(plan, 2)
    assert digest(plan, 4) != digest(make_plan(maps, GRID, MARGIN, plan.shapes[:1]), 4)
    maps[2, 0, 0] = (maps[2, 0, 0] + 1) % 3
    assert digest(plan, 4) != digest(make_plan(maps, GRID, MARGIN, plan.shapes), 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_map_grid_and_parameters_give_a_plan_that_tiles_every_frame(data):
    height, width = data.draw(st.integers(8, 70)), data.draw(st.integers(8, 90))
    grid = Grid(height, width, data.draw(st.integers(1, min(height, 6))), data.draw(st.integers(1, min(width, 8))))
    margin = data.draw(st.integers(0, 12))
    models = data.draw(st.integers(1, 4))
    maps = np.array(data.draw(st.lists(st.lists(st.integers(0, models - 1), min_size=grid.num_patches,
                                                max_size=grid.num_patches), min_size=1, max_size=3)), np.uint8)
    maps = maps.reshape(-1, grid.rows, grid.cols)
    extra = data.draw(st.lists(st.tuples(st.integers(1, height), st.integers(1, width)), max_size=3))
    shapes = check_parameters([list(base_shape(grid, margin)), *map(list, extra)], margin, grid)
    _check_tiling(make_plan(maps, grid, margin, shapes), maps, grid, margin)
