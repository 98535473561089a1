"""Per-patch difficulty scores, vectorized over whole frames (higher = easier).

- bicubic: PSNR of bicubic upsampling against HR. Needs no weights (the default).
- general: PSNR of a general SR model (a WDSR checkpoint) against HR.
- dct: no HR needed. Spatial energy = mean AC energy of the luma's 8x8 block DCT;
  temporal energy = mean AC energy of a DCT along time over a window of frames
  (the two signals EPS, 2024, samples patches by). Score = 10·log10(255² / (1 + spatial
  + temporal)): dB like the others, lower for busier, faster-moving patches.

Each scorer returns `Scores`: the score [T, rows, cols] and the features the kmeans
partition clusters on [T, rows, cols, F].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.fft
import torch
from torch import nn

from stdo.grid import Grid, patch_means, region_sums
from stdo.metrics import PEAK, psnr_from_mse
from stdo.resample import as_nchw, frames_per_batch, upscale_bicubic
from stdo.progress import CountProgress

SCORERS = ("bicubic", "general", "dct")


@dataclass
class Scores:
    scores: np.ndarray  # float32 [T, rows, cols], higher = easier
    features: np.ndarray  # float32 [T, rows, cols, F]
    feature_names: tuple[str, ...]


def _psnr_scores(upscale: Callable[[np.ndarray], torch.Tensor], hr: np.ndarray, lr: np.ndarray, grid: Grid,
                 scale: int, context: int | None, progress: CountProgress) -> Scores:
    """Per-patch PSNR of upscale(lr) against hr.

    With `context` (the LR rows the upscaler reads beyond a row of patches), frames are
    processed one patch row at a time: buffers stay a few MB, which is cache-friendly and
    lets the allocator reuse them instead of growing the process. Without it, whole frames.
    """
    t, h, w = lr.shape[:3]
    out = np.empty((t, grid.rows, grid.cols), np.float32)
    groups = [(r, r + 1) for r in range(grid.rows)] if context is not None else [(0, grid.rows)]
    stripes = []  # (first and last patch row, their LR rows, the LR rows read, patch edges inside, pixels)
    for r0, r1 in groups:
        y0, y1 = int(grid.row_edges[r0]), int(grid.row_edges[r1])
        a, b = (max(y0 - context, 0), min(y1 + context, h)) if context is not None else (0, h)
        row_edges = (grid.row_edges[r0 : r1 + 1] - y0) * scale
        stripes.append((r0, r1, y0, y1, a, b, row_edges, np.outer(np.diff(row_edges), np.diff(grid.col_edges * scale))))
    tallest = max(b - a for *_, a, b, _, _ in stripes)
    batch = frames_per_batch(tallest * scale, w * scale, pixel_budget=500_000 if context is not None else 2_000_000)
    for i in range(0, t, batch):
        for r0, r1, y0, y1, a, b, row_edges, pixels in stripes:
            up = upscale(lr[i : i + batch, a:b])[:, :, (y0 - a) * scale : (y1 - a) * scale]
            se = up.sub_(as_nchw(hr[i : i + batch, y0 * scale : y1 * scale])).square_().mean(1).numpy()
            out[i : i + batch, r0:r1] = psnr_from_mse(region_sums(se, row_edges, grid.col_edges * scale) / pixels)
        if progress:
            progress(min(batch, t - i))
    return Scores(out, out[..., None].copy(), ("psnr",))


def score_bicubic(hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, progress: CountProgress = None) -> Scores:
    """PSNR of each patch of the bicubic upsampled LR frames against HR."""
    # The a = -0.5 cubic reads 2 LR pixels on each side; 3 rows of context make stripes exact.
    return _psnr_scores(lambda x: upscale_bicubic(x, scale), hr, lr, grid, scale, 3, progress)


def score_model(hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, model: nn.Module, device: str = "cpu",
                progress: CountProgress = None) -> Scores:
    """PSNR of each patch of a general SR model's output (whole frames in, [0,1] RGB) against HR."""
    model = model.to(device).eval()

    @torch.no_grad()  # not inference_mode: the caller updates the output in place
    def upscale(x: np.ndarray) -> torch.Tensor:
        y = model(as_nchw(x).to(device).float() / 255.0)
        return (y * 255.0).round_().clamp_(0, 255).cpu()

    return _psnr_scores(upscale, hr, lr, grid, scale, None, progress)


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma (0..255 float32) of uint8 RGB frames [T, H, W, 3] -> [T, H, W]."""
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def spatial_dct_energy(y: np.ndarray, block: int = 8) -> np.ndarray:
    """Per-pixel AC energy of the block DCT of luma frames [T, H, W] (each pixel gets its block's mean)."""
    t, h, w = y.shape
    ph, pw = -h % block, -w % block
    y = np.pad(y, ((0, 0), (0, ph), (0, pw)), mode="edge")
    blocks = y.reshape(t, (h + ph) // block, block, (w + pw) // block, block)
    coef = scipy.fft.dctn(blocks, axes=(2, 4), norm="ortho")
    energy = (coef**2).sum(axis=(2, 4)) - coef[:, :, 0, :, 0] ** 2
    per_pixel = np.repeat(np.repeat(energy / block**2, block, axis=1), block, axis=2)
    return per_pixel[:, :h, :w].astype(np.float32)


def _time_window(i: int, t: int, window: int) -> int:
    """First frame of the `window` frames around frame i, inside a clip of t frames."""
    return min(max(i - window // 2, 0), t - window)


def temporal_dct_energy(y: np.ndarray, window: int = 4, frames: range | None = None, first: int = 0,
                        total: int | None = None) -> np.ndarray:
    """Per-pixel AC energy of a DCT along time over `window` frames around each frame, [T, H, W].

    `y` may hold only frames first .. first+len(y)-1 of a clip of `total` frames: the energy of `frames`
    (default: all of y) is computed from them, so a long clip is scored a block at a time."""
    total = len(y) if total is None else total
    frames = range(first, first + len(y)) if frames is None else frames
    window = min(window, total)
    out = np.empty((len(frames),) + y.shape[1:], np.float32)
    for n, i in enumerate(frames):
        lo = _time_window(i, total, window) - first
        coef = scipy.fft.dct(y[lo : lo + window], axis=0, norm="ortho")
        out[n] = (coef[1:] ** 2).sum(0) / window
    return out


def score_dct(lr: np.ndarray, grid: Grid, batch: int = 16, window: int = 4, progress: CountProgress = None) -> Scores:
    """Difficulty from the LR frames alone: spatial and temporal DCT energy per patch, `batch` frames at a time
    (with the frames their time windows reach), so memory does not grow with the clip."""
    t = len(lr)
    spatial = np.empty((t, grid.rows, grid.cols))
    temporal = np.empty((t, grid.rows, grid.cols))
    reach = min(window, t)
    for i in range(0, t, batch):
        j = min(i + batch, t)
        a, b = _time_window(i, t, reach), _time_window(j - 1, t, reach) + reach
        y = luma(lr[a:b])
        spatial[i:j] = patch_means(spatial_dct_energy(y[i - a : j - a]), grid)
        temporal[i:j] = patch_means(temporal_dct_energy(y, window, range(i, j), a, t), grid)
        if progress:
            progress(j - i)
    scores = 10 * np.log10(PEAK**2 / (1.0 + spatial + temporal))
    features = np.stack([np.log1p(spatial), np.log1p(temporal)], axis=-1)
    return Scores(scores.astype(np.float32), features.astype(np.float32), ("log_spatial_energy", "log_temporal_energy"))
