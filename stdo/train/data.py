"""Random LR/HR crop pairs drawn straight from the in-memory uint8 frames of a RUN.

No per-patch files: a batch is one fancy-indexing gather from the frame arrays. A
sample picks a patch (t, row, col) from the given set, then a square LR crop that
covers as much of that patch as it can: inside the patch when the patch is larger than
the crop, around it (with context from its neighbours) when smaller.

As at inference, the network reads the crop with `context` LR pixels around it (the
grid's margin), and the loss covers only the crop: a mask marks it inside the window.
Without that, a small crop's zero-padded border is a large share of the loss and the
model learns crop borders instead of the picture. Windows stay inside the frame, so
at the frame border the crop sits off-centre in its window. Optional flips and
90-degree rotations apply to window and mask alike.
"""

from __future__ import annotations

import numpy as np
import torch

from stdo.grid import Grid
from stdo.video import as_nchw


def _crop_starts(lo: np.ndarray, hi: np.ndarray, crop: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Random crop starts covering [lo, hi) as much as possible, clamped to [0, limit - crop]."""
    a, b = np.minimum(lo, hi - crop), np.maximum(lo, hi - crop)
    starts = a + np.floor(rng.random(lo.shape) * (b - a + 1)).astype(np.int64)
    return np.clip(starts, 0, limit - crop)


class PatchSampler:
    """Draws batches (lr [B,3,w,w], hr [B,3,w·s,w·s], mask [B,1,w·s,w·s]) in [0, 1]; w = crop + 2·context."""

    def __init__(self, hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, patches: np.ndarray,
                 crop: int = 32, context: int | None = None, augment: bool = True) -> None:
        """`patches`: int array [N, 3] of (frame, row, col) to draw from; context defaults to the grid's margin."""
        if len(patches) == 0:
            raise ValueError("no patches to sample from")
        self.hr, self.lr, self.grid, self.scale = hr, lr, grid, scale
        self.patches = np.asarray(patches, np.int64)
        size = min(grid.height, grid.width)
        self.crop = min(crop, size)
        context = grid.margin if context is None else context
        self.window = min(self.crop + 2 * context, size)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.patches)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.gather(self.patches[rng.integers(0, len(self.patches), batch)], rng)

    def gather(self, picked: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows and loss masks for the given (frame, row, col) patches, [B, 3]."""
        g, p, w, s = self.grid, self.crop, self.window, self.scale
        t, r, c = picked.T
        cy = _crop_starts(g.row_edges[r], g.row_edges[r + 1], p, g.height, rng)
        cx = _crop_starts(g.col_edges[c], g.col_edges[c + 1], p, g.width, rng)
        wy = np.clip(cy - (w - p) // 2, 0, g.height - w)  # the window around the crop, inside the frame
        wx = np.clip(cx - (w - p) // 2, 0, g.width - w)
        ar, ar_s = np.arange(w), np.arange(w * s)
        lr = self.lr[t[:, None, None], (wy[:, None] + ar)[:, :, None], (wx[:, None] + ar)[:, None, :]]
        hr = self.hr[t[:, None, None], (wy[:, None] * s + ar_s)[:, :, None], (wx[:, None] * s + ar_s)[:, None, :]]
        oy, ox = (cy - wy) * s, (cx - wx) * s
        inside_y = (ar_s[None, :] >= oy[:, None]) & (ar_s[None, :] < oy[:, None] + p * s)
        inside_x = (ar_s[None, :] >= ox[:, None]) & (ar_s[None, :] < ox[:, None] + p * s)
        mask = torch.from_numpy(inside_y[:, None, :, None] & inside_x[:, None, None, :]).float()
        lr_t = as_nchw(lr).float().div_(255)
        hr_t = as_nchw(hr).float().div_(255)
        if self.augment:
            lr_t, hr_t, mask = _augment((lr_t, hr_t, mask), rng)
        return lr_t.contiguous(), hr_t.contiguous(), mask.contiguous()


def _augment(tensors: tuple[torch.Tensor, ...], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """The 8 flips/rotations of the square, one drawn per sample, applied to every tensor alike."""
    flags = rng.integers(0, 2, (len(tensors[0]), 3)).astype(bool)
    out = list(tensors)
    for column, op in ((0, lambda x: x.flip(-1)), (1, lambda x: x.flip(-2)), (2, lambda x: x.transpose(-1, -2))):
        idx = torch.from_numpy(np.flatnonzero(flags[:, column]))
        if len(idx):
            for k, x in enumerate(out):
                x[idx] = op(x[idx])
    return tuple(out)


def patches_of(chunks: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """(frame, row, col) of every patch in `chunk` (or all patches), [N, 3]."""
    mask = np.ones(chunks.shape, bool) if chunk is None else chunks == chunk
    return np.argwhere(mask)
