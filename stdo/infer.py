"""Patch-wise super-resolution of whole frames: patches -> their chunk's model -> stitched frames.

Every frame is split into windows (patch + margin, one shape for all), the windows are
grouped by the model that serves them, each model runs once per group, and the outputs
are stitched back with the margins cropped. The same path serves evaluation after
training and playback.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from stdo.grid import Grid, split, stitch
from stdo.video import as_nchw

Runner = Callable[[torch.Tensor], torch.Tensor]  # [N, 3, h, w] in [0,1] -> [N, 3, s·h, s·w]


class TimedRunner:
    """A runner that adds up its own time and the windows it served."""

    def __init__(self, runner: Runner) -> None:
        self.runner, self.seconds, self.windows = runner, 0.0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        y = self.runner(x)
        self.seconds += time.perf_counter() - t0
        self.windows += len(x)
        return y


@torch.no_grad()
def upscale_batch(lr: torch.Tensor, grid: Grid, scale: int, assignment: np.ndarray, runners: Sequence[Runner],
                  max_windows: int = 256) -> torch.Tensor:
    """lr float [B, 3, h, w] in [0,1], assignment [B, rows, cols] model index -> SR float [B, 3, s·h, s·w] in [0,1]."""
    windows = split(lr, grid)
    b, rows, cols, c, wh, ww = windows.shape
    flat = windows.reshape(b * rows * cols, c, wh, ww)
    which = torch.from_numpy(np.ascontiguousarray(assignment).reshape(-1).astype(np.int64))
    out = flat.new_empty(b * rows * cols, c, wh * scale, ww * scale)
    for k in torch.unique(which).tolist():
        idx = torch.nonzero(which == k).squeeze(1)
        for start in range(0, len(idx), max_windows):
            part = idx[start : start + max_windows]
            out[part] = runners[k](flat[part]).float()
    return stitch(out.reshape(b, rows, cols, c, wh * scale, ww * scale), grid, scale).clamp_(0, 1)


def iter_upscaled(lr: np.ndarray, grid: Grid, scale: int, assignment: np.ndarray, runners: Sequence[Runner],
                  frames_per_batch: int = 4, device: str = "cpu") -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first frame index, SR frames float [B, 3, H, W] on 0..255, rounded) over uint8 LR frames [T, h, w, 3]."""
    for i in range(0, len(lr), frames_per_batch):
        x = as_nchw(lr[i : i + frames_per_batch]).to(device).float().div_(255)
        sr = upscale_batch(x, grid, scale, assignment[i : i + frames_per_batch], runners)
        yield i, sr.mul_(255).round_().cpu()
