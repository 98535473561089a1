"""The inference plan: merged same-model windows that tile every frame once, and a reader that trusts nothing."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stdo.grid import Grid
from stdo.plan import FIELDS, Plan, PlanError, base_shape, choose_shapes, decode_plan, encode_plan, make_plan

GRID = Grid(54, 90, 4, 6)  # uneven patches: 13-14 x 15 LR pixels
MARGIN = 4


def _model_map(seed: int = 0, frames: int = 5, models: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, models, (GRID.rows, GRID.cols))
    maps = np.repeat(base[None], frames, 0).astype(np.uint8)
    maps[-1] = rng.integers(0, models, (GRID.rows, GRID.cols))  # one frame changes
    return maps


def _decode(plan: Plan, frames: int, models: int = 3, data: bytes | None = None, runs: int | None = None) -> Plan:
    return decode_plan(encode_plan(plan) if data is None else data, int(plan.frame_plan.max()) + 1,
                       len(plan.runs) if runs is None else runs, [list(s) for s in plan.shapes], plan.margin, frames,
                       models, GRID)


def test_a_plan_tiles_every_frame_once_and_reads_back():
    maps = _model_map()
    shapes = choose_shapes(maps, GRID, MARGIN, 3)
    assert shapes[0] == base_shape(GRID, MARGIN) and 1 <= len(shapes) <= 3
    plan = make_plan(maps, GRID, MARGIN, shapes)
    back = _decode(plan, len(maps))  # the reader's own checks: tiling, bounds, models, shapes
    np.testing.assert_array_equal(back.runs, plan.runs)
    np.testing.assert_array_equal(back.frame_plan, plan.frame_plan)
    assert plan.num_plans == 2 and plan.frame_plan.tolist() in ([0, 0, 0, 0, 1], [1, 1, 1, 1, 0])  # stored once each
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


def _tampered(change):
    maps = _model_map()
    plan = make_plan(maps, GRID, MARGIN, choose_shapes(maps, GRID, MARGIN, 3))
    runs = change(plan.runs.copy())
    return Plan(plan.frame_plan, runs[np.argsort(runs[:, 0], kind="stable")], plan.shapes, plan.margin), len(maps)


def _field(name: str) -> int:
    return FIELDS.index(name)


@pytest.mark.parametrize("change, message", [
    (lambda r: r[1:], "does not tile the frame exactly once"),  # a rectangle left uncovered
    (lambda r: np.concatenate([r, r[:1]]), "does not tile the frame exactly once"),  # overlap
    (lambda r: (r.__setitem__((0, _field("y")), GRID.height), r)[1], "outside the frame"),
    (lambda r: (r.__setitem__((0, _field("model")), 3), r)[1], "model outside"),
    (lambda r: (r.__setitem__((0, _field("shape")), 7), r)[1], "shape the plan does not have"),
    (lambda r: (r.__setitem__((0, _field("top")), r[0, _field("y")] - 1), r)[1], "leaves its window"),
    (lambda r: (r.__setitem__((0, _field("plan")), 9), r)[1], "in 0..1"),
    (lambda r: r[r[:, 0] != 1], "frame plan 1 does not tile|has no runs"),
])
def test_bad_plans_are_refused(change, message):
    plan, frames = _tampered(change)
    with pytest.raises(PlanError, match=message):
        _decode(plan, frames)


def test_bad_files_and_shapes_are_refused():
    maps = _model_map()
    plan = make_plan(maps, GRID, MARGIN, (base_shape(GRID, MARGIN),))
    with pytest.raises(PlanError, match="not zlib"):
        _decode(plan, len(maps), data=b"not a plan")
    with pytest.raises(PlanError, match="expected"):
        _decode(plan, len(maps), runs=len(plan.runs) + 1)
    with pytest.raises(PlanError, match="larger than the frame"):
        decode_plan(encode_plan(plan), plan.num_plans, len(plan.runs), [[GRID.height + 1, 4]], MARGIN, len(maps), 3, GRID)
    with pytest.raises(PlanError, match="pairs"):
        decode_plan(encode_plan(plan), plan.num_plans, len(plan.runs), [[1.5, 4]], MARGIN, len(maps), 3, GRID)
    bad = Plan(plan.frame_plan.copy(), plan.runs, plan.shapes, plan.margin)
    bad.frame_plan[0] = 5
    with pytest.raises(PlanError, match="frame plan outside 0..1"):
        decode_plan(encode_plan(bad), 2, len(plan.runs), [list(s) for s in plan.shapes], MARGIN, len(maps), 3, GRID)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_plans_are_read_or_refused_never_crash(data):
    maps = _model_map(frames=2)
    plan = make_plan(maps, GRID, MARGIN, choose_shapes(maps, GRID, MARGIN, 2))
    runs, frame_plan = plan.runs.copy(), plan.frame_plan.copy()
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(runs) - 1))
            j = data.draw(st.integers(0, len(FIELDS) - 1))
            runs[i, j] = data.draw(st.integers(-3, 100))
        else:
            frame_plan[data.draw(st.integers(0, 1))] = data.draw(st.integers(-2, 3))
    try:
        back = _decode(Plan(frame_plan, runs, plan.shapes, plan.margin), 2)
    except PlanError:
        return
    # what the reader accepts tiles every frame exactly once inside the frame
    for t in range(2):
        cover = np.zeros((GRID.height, GRID.width), int)
        for _, _, _, _, _, top, left, h, w in back.frame_runs(t):
            cover[top : top + h, left : left + w] += 1
        assert (cover == 1).all()
