"""Random LR/HR crop pairs drawn straight from the in-memory uint8 frames of a RUN.

No per-patch files: a batch is one fancy-indexing gather from the frame arrays. A
sample picks a patch (t, row, col) from the given set, then a square LR crop that
covers as much of that patch as it can: inside the patch when the patch is larger than
the crop, around it (with context from its neighbours) when smaller; always inside the
frame. Optional flips and 90-degree rotations.
"""

from __future__ import annotations

import numpy as np
import torch

from stdo.grid import Grid


def _crop_starts(lo: np.ndarray, hi: np.ndarray, crop: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Random crop starts covering [lo, hi) as much as possible, clamped to [0, limit - crop]."""
    a, b = np.minimum(lo, hi - crop), np.maximum(lo, hi - crop)
    starts = a + np.floor(rng.random(lo.shape) * (b - a + 1)).astype(np.int64)
    return np.clip(starts, 0, limit - crop)


class PatchSampler:
    """Draws batches of (lr, hr) float tensors in [0, 1], [B, 3, p, p] and [B, 3, p·s, p·s]."""

    def __init__(self, hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, patches: np.ndarray,
                 crop: int = 32, augment: bool = True) -> None:
        """`patches`: int array [N, 3] of (frame, row, col) to draw from."""
        if len(patches) == 0:
            raise ValueError("no patches to sample from")
        self.hr, self.lr, self.grid, self.scale = hr, lr, grid, scale
        self.patches = np.asarray(patches, np.int64)
        self.crop = min(crop, grid.height, grid.width)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.patches)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gather(self.patches[rng.integers(0, len(self.patches), batch)], rng)

    def gather(self, picked: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops for the given (frame, row, col) patches, [B, 3] -> (lr, hr)."""
        g, p, s = self.grid, self.crop, self.scale
        t, r, c = picked.T
        ys = _crop_starts(g.row_edges[r], g.row_edges[r + 1], p, g.height, rng)
        xs = _crop_starts(g.col_edges[c], g.col_edges[c + 1], p, g.width, rng)
        ar, ar_s = np.arange(p), np.arange(p * s)
        lr = self.lr[t[:, None, None], (ys[:, None] + ar)[:, :, None], (xs[:, None] + ar)[:, None, :]]
        hr = self.hr[t[:, None, None], (ys[:, None] * s + ar_s)[:, :, None], (xs[:, None] * s + ar_s)[:, None, :]]
        lr_t = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div_(255)
        hr_t = torch.from_numpy(hr).permute(0, 3, 1, 2).float().div_(255)
        if self.augment:
            lr_t, hr_t = _augment(lr_t, hr_t, rng)
        return lr_t.contiguous(), hr_t.contiguous()


def _augment(lr: torch.Tensor, hr: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8 flips/rotations of the square, one drawn per sample, applied to both."""
    flags = rng.integers(0, 2, (len(lr), 3)).astype(bool)
    for dims, column in (((-1,), 0), ((-2,), 1)):
        idx = torch.from_numpy(np.flatnonzero(flags[:, column]))
        if len(idx):
            lr[idx], hr[idx] = lr[idx].flip(dims), hr[idx].flip(dims)
    idx = torch.from_numpy(np.flatnonzero(flags[:, 2]))
    if len(idx):
        lr[idx], hr[idx] = lr[idx].transpose(-1, -2), hr[idx].transpose(-1, -2)
    return lr, hr


def patches_of(chunks: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """(frame, row, col) of every patch in `chunk` (or all patches), [N, 3]."""
    mask = np.ones(chunks.shape, bool) if chunk is None else chunks == chunk
    return np.argwhere(mask)
