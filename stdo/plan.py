"""The inference plan: for every frame, the model runs a client makes, so clients do no tiling.

A run is (frame, model, shape, window top-left, kept rectangle): the client cuts the LR window
of that shape at (y, x), runs the model on it, and writes the SR pixels of the kept rectangle
(LR coordinates, times the scale) into the output frame. The kept rectangles of a frame tile
it exactly, once.

Planning, per frame (`plan_frame`):
1. Cover the patch grid with same-model rectangles of patches, greedily: from the first
   uncovered patch in row order, grow right while the model stays the same, then down while
   the whole row span does.
2. Each rectangle needs its pixels plus `margin` LR pixels of context on every side (clipped at
   the frame border, where the network sees the frame's own padding). It runs as the smallest
   of the plan's shapes that holds that; the window is centred on it and shifted inside the
   frame. A rectangle no shape holds is halved along its longer side until it fits; one patch
   plus margins always fits (the base shape).
3. When the plan has the whole-frame shape and a model's windows would cost more pixels than
   the frame, that model runs once on the whole frame instead: its runs share one window, which
   a client runs once and keeps every rectangle of.
With the margin at least the model's receptive radius, every kept pixel equals that model run
on the whole frame, so merging rectangles changes no pixel; stdo.export.margin measures how far
below the radius a clip's models can go.

`choose_shapes` picks the few shapes (for fixed-shape runtimes, one model file each) that
minimise the pixels run over the whole clip.

Frames with the same model map get the same runs, so a plan stores each distinct frame plan
once, numbered in the order the frames first use them: `frame_plan[t]` names the frame plan of frame t, and
`runs` holds the frame plans' rows.

Clients derive the plan: a bundle ships the model map, the grid and the plan's parameters (shapes, margin),
and `make_plan` is a deterministic function of them, so a plan costs no bytes. The web player's
`derivePlan` (android_demo/web/stdo/plan.js) is its twin, run for run (tests/test_web.py). The tiling
holds by construction; `check_parameters` checks the shipped parameters as untrusted input, and the manifest
carries the `digest` of the plan export made, so a client whose derived plan differs (a tampered map or
parameters, or a planner of another version) refuses the bundle instead of playing other runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from stdo.errors import FormatError, StdoError
from stdo.grid import Grid

FIELDS = ("plan", "model", "shape", "y", "x", "top", "left", "height", "width")
MAX_SHAPES = 8
MAX_MARGIN = 256


class PlanError(FormatError):
    """The plan is malformed or does not tile the frames."""

    what = "plan"


@dataclass(frozen=True)
class Plan:
    frame_plan: np.ndarray  # int32 [T]: the frame plan each frame runs
    runs: np.ndarray  # int32 [N, 9], FIELDS, sorted by frame plan
    shapes: tuple[tuple[int, int], ...]  # (h, w) of each window shape
    margin: int

    @property
    def num_plans(self) -> int:
        return int(self.runs[-1, 0]) + 1 if len(self.runs) else 0

    def frame_runs(self, first: int, count: int = 1) -> np.ndarray:
        """Rows of frames first .. first+count-1, column 0 the frame index (what stdo.infer.upscale_planned takes)."""
        bounds = np.searchsorted(self.runs[:, 0], np.arange(self.num_plans + 1))
        parts = []
        for t in range(first, first + count):
            p = int(self.frame_plan[t])
            rows = self.runs[bounds[p] : bounds[p + 1]].copy()
            rows[:, 0] = t
            parts.append(rows)
        return np.concatenate(parts) if parts else self.runs[:0]

    def stats(self, grid: Grid) -> dict:
        """Model runs per frame (distinct windows), LR pixels run over the frame's pixels, frame plans."""
        frames = max(len(self.frame_plan), 1)
        uses = np.bincount(self.frame_plan, minlength=self.num_plans)  # frames per frame plan
        windows = np.unique(self.runs[:, :5], axis=0)
        areas = np.array([h * w for h, w in self.shapes], np.int64)
        weight = uses[windows[:, 0]]
        return {"runs_per_frame": float(weight.sum()) / frames,
                "pixels_run_per_needed": float((weight * areas[windows[:, 2]]).sum()) / (frames * grid.height * grid.width),
                "frame_plans": self.num_plans, "shapes": [list(s) for s in self.shapes], "margin": self.margin}


# ---------------------------------------------------------------------------- planning


def _rectangles(frame_map: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Greedy same-model rectangles of patches: (model, r0, c0, r1, c1) with r1, c1 exclusive."""
    rows, cols = frame_map.shape
    covered = np.zeros_like(frame_map, bool)
    out = []
    for r in range(rows):
        for c in range(cols):
            if covered[r, c]:
                continue
            m = frame_map[r, c]
            c1 = c + 1
            while c1 < cols and frame_map[r, c1] == m and not covered[r, c1]:
                c1 += 1
            r1 = r + 1
            while r1 < rows and (frame_map[r1, c:c1] == m).all() and not covered[r1, c:c1].any():
                r1 += 1
            covered[r:r1, c:c1] = True
            out.append((int(m), r, c, r1, c1))
    return out


def _needed(grid: Grid, r0: int, c0: int, r1: int, c1: int) -> tuple[int, int, int, int]:
    """LR pixels of a rectangle of patches: (top, left, height, width)."""
    top, bottom = int(grid.row_edges[r0]), int(grid.row_edges[r1])
    left, right = int(grid.col_edges[c0]), int(grid.col_edges[c1])
    return top, left, bottom - top, right - left


def _window_size(grid: Grid, margin: int, top: int, left: int, h: int, w: int) -> tuple[int, int]:
    return (min(top + h + margin, grid.height) - max(top - margin, 0),
            min(left + w + margin, grid.width) - max(left - margin, 0))


def base_shape(grid: Grid, margin: int) -> tuple[int, int]:
    """The window of the largest patch plus margins: some shape of every plan holds it."""
    ph, pw = grid.patch_shape
    return min(ph + 2 * margin, grid.height), min(pw + 2 * margin, grid.width)


def _place(start: int, size: int, window: int, length: int, margin: int) -> int:
    """Top (or left) of a window of `window` pixels holding [start - margin, start + size + margin) clipped."""
    lo, hi = max(start - margin, 0), min(start + size + margin, length)
    return int(np.clip(lo - (window - (hi - lo)) // 2, 0, length - window))


def plan_frame(frame_map: np.ndarray, grid: Grid, margin: int, shapes: tuple[tuple[int, int], ...]) -> list[tuple]:
    """Runs (model, shape index, y, x, top, left, height, width) of one frame's model map [rows, cols]."""
    areas = [h * w for h, w in shapes]
    order = sorted(range(len(shapes)), key=lambda i: areas[i])
    runs = []
    todo = list(_rectangles(frame_map))
    while todo:
        m, r0, c0, r1, c1 = todo.pop()
        top, left, h, w = _needed(grid, r0, c0, r1, c1)
        nh, nw = _window_size(grid, margin, top, left, h, w)
        fit = next((i for i in order if shapes[i][0] >= nh and shapes[i][1] >= nw), None)
        if fit is None:
            if r1 - r0 >= c1 - c0 and r1 - r0 > 1:
                mid = (r0 + r1) // 2
                todo += [(m, r0, c0, mid, c1), (m, mid, c0, r1, c1)]
            elif c1 - c0 > 1:
                mid = (c0 + c1) // 2
                todo += [(m, r0, c0, r1, mid), (m, r0, mid, r1, c1)]
            else:
                raise StdoError(f"no plan shape holds one patch with margin {margin}: include {base_shape(grid, margin)}")
            continue
        sh, sw = shapes[fit]
        y, x = _place(top, h, sh, grid.height, margin), _place(left, w, sw, grid.width, margin)
        runs.append((m, fit, y, x, top, left, h, w))
    full = next((i for i, s in enumerate(shapes) if s == (grid.height, grid.width)), None)
    if full is not None:  # a model whose windows cost more than the frame runs once on the whole frame
        for m in {r[0] for r in runs}:
            mine = [r for r in runs if r[0] == m]
            if sum(areas[r[1]] for r in mine) > areas[full]:
                runs = [r for r in runs if r[0] != m] + [(m, full, 0, 0, *r[4:]) for r in mine]
    return sorted(runs)


def _capped(shape: tuple[int, int], grid: Grid) -> tuple[int, int]:
    return min(shape[0], grid.height), min(shape[1], grid.width)


def choose_shapes(model_map: np.ndarray, grid: Grid, margin: int, count: int = 3) -> tuple[tuple[int, int], ...]:
    """Up to `count` window shapes that minimise the pixels run over the clip (greedy, the base shape first)."""
    if not 1 <= count <= MAX_SHAPES:
        raise StdoError(f"plan shapes {count} is outside 1..{MAX_SHAPES}")
    maps, weights = np.unique(model_map.reshape(len(model_map), -1), axis=0, return_counts=True)
    maps = maps.reshape(-1, grid.rows, grid.cols)
    needs = {}
    for frame_map, weight in zip(maps, weights):
        for m, r0, c0, r1, c1 in _rectangles(frame_map):
            size = _window_size(grid, margin, *_needed(grid, r0, c0, r1, c1))
            needs[size] = needs.get(size, 0) + int(weight)
    shapes = [base_shape(grid, margin)]

    def cost(candidate: list[tuple[int, int]]) -> int:
        total = 0
        for frame_map, weight in zip(maps, weights):
            windows = {run[:4] for run in plan_frame(frame_map, grid, margin, tuple(candidate))}
            total += int(weight) * sum(candidate[s][0] * candidate[s][1] for _, s, *_ in windows)
        return total

    candidates = sorted({_capped(s, grid) for s in needs} - set(shapes), key=lambda s: -needs.get(s, 0))[:12]
    candidates = [c for c in dict.fromkeys([*candidates, (grid.height, grid.width)]) if c not in shapes]
    best = cost(shapes)
    while len(shapes) < count and candidates:
        scored = [(cost(shapes + [c]), c) for c in candidates]
        value, pick = min(scored)
        if value >= best:
            break
        shapes.append(pick)
        candidates.remove(pick)
        best = value
    return _used(tuple(shapes), maps, grid, margin)


def _used(shapes: tuple[tuple[int, int], ...], maps: np.ndarray, grid: Grid, margin: int) -> tuple[tuple[int, int], ...]:
    """`shapes` less those no window of the plan uses (the base shape, where one model serves whole frames): a
    fixed-shape runtime (TFLite) carries a signature per shape, so a shape no run needs would be downloaded for
    nothing. The base shape stays where no shape left holds it (check_parameters), and all stay where dropping some
    would change a window."""
    def windows(candidate: tuple[tuple[int, int], ...]) -> list[list[tuple]]:
        return [[(m, candidate[s], *rest) for m, s, *rest in plan_frame(frame_map, grid, margin, candidate)]
                for frame_map in maps]

    try:
        planned = windows(shapes)
        bh, bw = base_shape(grid, margin)
        needed = {run[1] for frame in planned for run in frame}
        if not any(h >= bh and w >= bw for h, w in needed):
            needed.add((bh, bw))  # clients check that one shape holds a patch with its margins
        used = tuple(s for s in shapes if s in needed)
        return used if used != shapes and windows(used) == planned else shapes
    except StdoError:  # a run the smaller set cannot place
        return shapes


def make_plan(model_map: np.ndarray, grid: Grid, margin: int, shapes: tuple[tuple[int, int], ...]) -> Plan:
    """The plan of a clip's model map [T, rows, cols]: one frame plan per distinct frame map."""
    flat = np.ascontiguousarray(model_map).reshape(len(model_map), -1)
    maps, first, frame_plan = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # frame plans numbered in the order the frames first use them
    number = np.empty_like(order)
    number[order] = np.arange(len(order))
    maps, frame_plan = maps[order], number[frame_plan.reshape(-1)]
    rows = [(p, *run) for p, frame_map in enumerate(maps)
            for run in plan_frame(frame_map.reshape(grid.rows, grid.cols), grid, margin, shapes)]
    runs = np.array(rows, np.int32).reshape(-1, len(FIELDS))
    return Plan(frame_plan.astype(np.int32), runs, tuple(shapes), margin)


# ---------------------------------------------------------------------------- shipped parameters


def digest(plan: Plan, scale: int) -> str:
    """sha256 of the plan as a client executes it at `scale` (the kept rectangles' SR pixels are theirs times the
    scale, so the scale is part of what it names): little-endian int32, the scale, frame_plan [T], then the runs
    row by row [N, 9]."""
    data = (np.array([scale], "<i4").tobytes() + np.ascontiguousarray(plan.frame_plan, "<i4").tobytes()
            + np.ascontiguousarray(plan.runs, "<i4").tobytes())
    return hashlib.sha256(data).hexdigest()


_need = PlanError.need


def check_parameters(shapes: object, margin: object, grid: Grid) -> tuple[tuple[int, int], ...]:
    """The window shapes a bundle ships, checked against its grid: 1..MAX_SHAPES [h, w] pairs inside the frame,
    a margin in 0..MAX_MARGIN, and one shape holding the largest patch with its margins (so every rectangle fits
    some shape once halved)."""
    _need(isinstance(margin, int) and not isinstance(margin, bool) and 0 <= margin <= MAX_MARGIN,
          f"margin must be an integer in 0..{MAX_MARGIN}, got {margin!r}")
    _need(isinstance(shapes, list) and 1 <= len(shapes) <= MAX_SHAPES
          and all(isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              and 1 <= v for v in s) for s in shapes),
          f"shapes must be 1..{MAX_SHAPES} [height, width] pairs")
    _need(all(h <= grid.height and w <= grid.width for h, w in shapes), "a shape is larger than the frame")
    bh, bw = base_shape(grid, margin)
    _need(any(h >= bh and w >= bw for h, w in shapes),
          f"no shape holds one patch with its margin of {margin} ({bh}x{bw} LR pixels)")
    return tuple((h, w) for h, w in shapes)
