"""Random LR/HR crop pairs drawn straight from the in-memory uint8 frames of a RUN.

No per-patch files: a batch is a set of slices of the frame arrays. A sample picks a
patch (t, row, col) from the given set, then a square LR crop that covers as much of
that patch as it can: inside the patch when the patch is larger than the crop, around
it (with context from its neighbours) when smaller.

As at inference, the network reads the crop with `context` LR pixels around it (the
grid's margin), and the loss covers only the crop: a mask marks it inside the window.
Without that, a small crop's zero-padded border is a large share of the loss and the
model learns crop borders instead of the picture. Windows stay inside the frame, so
at the frame border the crop sits off-centre in its window. Optional flips and
transposes (the square's 8 symmetries) apply to window and mask alike.

With a temporal radius r, each LR window is the same crop of frames t-r .. t+r (the clip's
first and last frames repeated past its ends), stacked along channels, for a multi-frame
model; the target is frame t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stdo.grid import Grid


def _crop_starts(lo: np.ndarray, hi: np.ndarray, crop: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Random crop starts covering [lo, hi) as much as possible, clamped to [0, limit - crop]."""
    a, b = np.minimum(lo, hi - crop), np.maximum(lo, hi - crop)
    starts = a + np.floor(rng.random(lo.shape) * (b - a + 1)).astype(np.int64)
    return np.clip(starts, 0, limit - crop)


def crop_and_window(grid: Grid, crop: int, context: int) -> tuple[int, int]:
    """The LR crop and the window read around it (crop + 2·context), both fitting in the grid's smaller side."""
    size = min(grid.height, grid.width)
    crop = min(crop, size)
    return crop, min(crop + 2 * context, size)


def place_windows(grid: Grid, rows: np.ndarray, cols: np.ndarray, crop: int, window: int, scale: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(window top-left y, x in LR; the crop's offset inside the HR window y, x) for patches at (rows, cols): a
    random crop covering each patch, and its window around it, inside the frame (off-centre at the border)."""
    g = grid
    cy = _crop_starts(g.row_edges[rows], g.row_edges[rows + 1], crop, g.height, rng)
    cx = _crop_starts(g.col_edges[cols], g.col_edges[cols + 1], crop, g.width, rng)
    wy = np.clip(cy - (window - crop) // 2, 0, g.height - window)
    wx = np.clip(cx - (window - crop) // 2, 0, g.width - window)
    return wy, wx, (cy - wy) * scale, (cx - wx) * scale


@dataclass(frozen=True)
class ClipFrames:
    """What a model learns from: HR frames uint8 [T, H, W, 3], their LR [T, H/s, W/s, 3] (as clients decode it), the
    patch grid over the LR and the scale s."""

    hr: np.ndarray
    lr: np.ndarray
    grid: Grid
    scale: int


class PatchSampler:
    """Draws batches (lr [B,3,w,w], hr [B,3,w·s,w·s], mask [B,1,w·s,w·s]) in [0, 1]; w = crop + 2·context."""

    def __init__(self, frames: ClipFrames, patches: np.ndarray, crop: int = 32, context: int | None = None,
                 augment: bool = True, radius: int = 0) -> None:
        """`patches`: int array [N, 3] of (frame, row, col) to draw from; context defaults to the grid's margin."""
        if len(patches) == 0:
            raise ValueError("no patches to sample from")
        self.hr, self.lr, self.grid, self.scale = frames.hr, frames.lr, frames.grid, frames.scale
        grid = frames.grid
        self.patches = np.asarray(patches, np.int64)
        self.crop, self.window = crop_and_window(grid, crop, grid.margin if context is None else context)
        self.augment = augment
        self.radius = radius

    def __len__(self) -> int:
        return len(self.patches)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.gather(self.patches[rng.integers(0, len(self.patches), batch)], rng)

    evaluation_sample = sample  # the kept state is judged on the task it trains for (ChunkSampler.draw)

    def gather(self, picked: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows and loss masks for the given (frame, row, col) patches, [B, 3].

        Each window is a slice of the uint8 frames, oriented (flips/transpose as views) and
        copied once into the batch; only the batch is converted to float. (A single
        fancy-indexing gather, then augmenting float tensors, drew the same batches 3x slower.)
        """
        p, w, s = self.crop, self.window, self.scale
        t, r, c = picked.T
        wy, wx, oy, ox = place_windows(self.grid, r, c, p, w, s, rng)
        n, ws = len(picked), w * s
        # flip width, flip height, transpose: one of the square's 8 symmetries per sample
        flags = rng.integers(0, 2, (n, 3)).astype(bool) if self.augment else np.zeros((n, 3), bool)
        frames, last = 2 * self.radius + 1, len(self.lr) - 1
        lr = np.empty((n, w, w, 3 * frames), np.uint8)
        hr = np.empty((n, ws, ws, 3), np.uint8)
        mask = np.zeros((n, ws, ws), np.float32)
        inside = np.zeros((ws, ws), np.float32)
        for i in range(n):
            inside[:] = 0
            inside[oy[i] : oy[i] + p * s, ox[i] : ox[i] + p * s] = 1
            for k in range(frames):
                tk = min(max(t[i] + k - self.radius, 0), last)
                lr[i, ..., 3 * k : 3 * k + 3] = _orient(self.lr[tk, wy[i] : wy[i] + w, wx[i] : wx[i] + w], flags[i])
            hr[i] = _orient(self.hr[t[i], wy[i] * s : wy[i] * s + ws, wx[i] * s : wx[i] * s + ws], flags[i])
            mask[i] = _orient(inside, flags[i])
        to_float = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float().div_(255).contiguous()  # noqa: E731
        return to_float(lr), to_float(hr), torch.from_numpy(mask)[:, None]


def _orient(image: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """A view of image [H, W, ...]: flipped along width if flags[0], height if flags[1], then transposed if flags[2]."""
    if flags[0]:
        image = image[:, ::-1]
    if flags[1]:
        image = image[::-1]
    if flags[2]:
        image = image.swapaxes(0, 1)
    return image


def patches_of(chunks: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """(frame, row, col) of every patch in `chunk` (or all patches), [N, 3]."""
    mask = np.ones(chunks.shape, bool) if chunk is None else chunks == chunk
    return np.argwhere(mask)
