"""The patch grid: the one place that knows patch geometry.

An LR frame of H×W is cut into `rows × cols` patches whose edges are integers
(floor(i·H/rows)), so sizes that do not divide evenly give patches that differ by one
pixel and nothing is dropped.

For inference every patch is read as a *window*: the patch plus a context margin of
`m` LR pixels on each side. All windows have one shape (largest patch + 2m, capped at
the frame) so that every model sees a single input shape, as fixed-shape runtimes
need. A window that would reach past the frame border is shifted back inside it
instead of padded, so at the border the network sees the same zero padding as when it
runs on the whole frame. Hence, with m at least the network's receptive radius,
stitching per-patch outputs reproduces whole-frame inference exactly (up to float
rounding).

Arrays are channel-first with the spatial axes last: frames [T, C, H, W], windows
[T, rows, cols, C, h, w]. Both numpy arrays and torch tensors work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from stdo.errors import StdoError
from stdo.options import Parsed

Array = np.ndarray | torch.Tensor


def parse_grid(text: str) -> tuple[int, int]:
    """'10x5' -> (cols, rows) = (10, 5)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise StdoError(f"grid {text!r} is not COLSxROWS: write it like 10x5")
    return int(m.group(1)), int(m.group(2))


GRID = Parsed(parse_grid, lambda grid: f"{grid[0]}x{grid[1]}", "grid")  # the command-line type of a grid


def edges(length: int, parts: int) -> np.ndarray:
    """Integer boundaries of `parts` near-equal pieces of `length`: floor(i·length/parts)."""
    return (np.arange(parts + 1, dtype=np.int64) * length) // parts


@dataclass(frozen=True)
class Grid:
    """Patch geometry of one LR frame size."""

    height: int
    width: int
    rows: int
    cols: int
    margin: int = 0

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise StdoError(f"grid {self.cols}x{self.rows} has no patches: use at least 1x1")
        if self.rows > self.height or self.cols > self.width:
            raise StdoError(
                f"grid {self.cols}x{self.rows} is finer than the {self.width}x{self.height} LR frame allows: use a coarser `grid`"
            )
        if self.margin < 0:
            raise StdoError(f"margin {self.margin} is negative: give 0 or more pixels")

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    @cached_property
    def row_edges(self) -> np.ndarray:
        return edges(self.height, self.rows)

    @cached_property
    def col_edges(self) -> np.ndarray:
        return edges(self.width, self.cols)

    @property
    def patch_shape(self) -> tuple[int, int]:
        """The largest patch, (h, w)."""
        return int(np.diff(self.row_edges).max()), int(np.diff(self.col_edges).max())

    @property
    def smallest_patch(self) -> tuple[int, int]:
        return int(np.diff(self.row_edges).min()), int(np.diff(self.col_edges).min())

    @property
    def window_shape(self) -> tuple[int, int]:
        """The one input shape of every patch window, (h, w)."""
        ph, pw = self.patch_shape
        return min(ph + 2 * self.margin, self.height), min(pw + 2 * self.margin, self.width)

    @cached_property
    def window_starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Top rows and left columns of the windows, shifted inside the frame at its borders."""
        wh, ww = self.window_shape
        ys = np.clip(self.row_edges[:-1] - self.margin, 0, self.height - wh)
        xs = np.clip(self.col_edges[:-1] - self.margin, 0, self.width - ww)
        return ys, xs

    def patch_pixels(self, scale: int = 1) -> np.ndarray:
        """Pixel count of each patch, [rows, cols]."""
        return np.outer(np.diff(self.row_edges), np.diff(self.col_edges)) * scale * scale


def _empty(like: Array, shape: tuple[int, ...]) -> Array:
    if isinstance(like, torch.Tensor):
        return like.new_empty(shape)
    return np.empty(shape, like.dtype)


def split(frames: Array, grid: Grid) -> Array:
    """[T, C, H, W] frames -> [T, rows, cols, C, wh, ww] windows (patch + margin)."""
    t, c, h, w = frames.shape
    if (h, w) != (grid.height, grid.width):
        raise ValueError(f"frames are {w}x{h}, grid is for {grid.width}x{grid.height}")
    wh, ww = grid.window_shape
    ys, xs = grid.window_starts
    out = _empty(frames, (t, grid.rows, grid.cols, c, wh, ww))
    for r, y in enumerate(ys):
        for col, x in enumerate(xs):
            out[:, r, col] = frames[:, :, y : y + wh, x : x + ww]
    return out


def stitch(windows: Array, grid: Grid, scale: int = 1) -> Array:
    """[T, rows, cols, C, s·wh, s·ww] outputs of the windows -> [T, C, s·H, s·W] frames.

    Each window's margin is cropped off; only the patch it serves is kept.
    """
    t, rows, cols, c = windows.shape[:4]
    wh, ww = grid.window_shape
    if (rows, cols) != (grid.rows, grid.cols) or windows.shape[4:] != (wh * scale, ww * scale):
        raise ValueError(f"windows of shape {tuple(windows.shape)} do not fit grid {grid} at x{scale}")
    out = _empty(windows, (t, c, grid.height * scale, grid.width * scale))
    ys, xs = grid.window_starts
    re_, ce = grid.row_edges * scale, grid.col_edges * scale
    for r in range(rows):
        oy = re_[r] - ys[r] * scale
        for col in range(cols):
            ox = ce[col] - xs[col] * scale
            hh, ww_ = re_[r + 1] - re_[r], ce[col + 1] - ce[col]
            out[:, :, re_[r] : re_[r + 1], ce[col] : ce[col + 1]] = windows[:, r, col, :, oy : oy + hh, ox : ox + ww_]
    return out


def region_sums(maps: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray) -> np.ndarray:
    """Sum a map [T, H, W] over the rectangles between consecutive edges: [T, rows, cols] (float64)."""
    rows = np.add.reduceat(maps, row_edges[:-1], axis=1, dtype=np.float64)
    return np.add.reduceat(rows, col_edges[:-1], axis=2, dtype=np.float64)


def patch_sums(maps: np.ndarray, grid: Grid, scale: int = 1) -> np.ndarray:
    """Sum a per-pixel map [T, s·H, s·W] over each patch: [T, rows, cols] (float64)."""
    return region_sums(maps, grid.row_edges * scale, grid.col_edges * scale)


def patch_means(maps: np.ndarray, grid: Grid, scale: int = 1) -> np.ndarray:
    """Mean of a per-pixel map [T, s·H, s·W] over each patch: [T, rows, cols] (float64)."""
    return patch_sums(maps, grid, scale) / grid.patch_pixels(scale)
