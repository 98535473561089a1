"""Patch-wise super-resolution of whole frames: patches -> their chunk's model -> stitched frames.

Two paths, which measure different things:
- `iter_upscaled`: every frame split into windows (patch + the RUN's margin, one shape for all), grouped by the
  model that serves them, each model run once per group, the outputs stitched back with the margins cropped.
  Training's evaluation and stdo-upscale use it: the models' quality on their own grid.
- `upscale_planned`: the bundle's inference plan (runs of same-model patches as a few window shapes, the plan's
  measured margin). stdo-play, the web player and export's verification use it: what a client computes. A test
  holds the two within 0.05 dB on a clip (the plan's margin leaves the output as exact as the grid's).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from stdo.errors import StdoError
from stdo.grid import Grid, split, stitch
from stdo.resample import as_nchw

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
def upscale_batch(lr: torch.Tensor, grid: Grid, scale: int, model_map: np.ndarray, runners: Sequence[Runner],
                  max_windows: int = 256) -> torch.Tensor:
    """lr float [B, 3, h, w] in [0,1], model_map [B, rows, cols] model index -> SR float [B, 3, s·h, s·w] in [0,1]."""
    windows = split(lr, grid)
    b, rows, cols, c, wh, ww = windows.shape
    flat = windows.reshape(b * rows * cols, c, wh, ww)
    which = torch.from_numpy(np.ascontiguousarray(model_map).reshape(-1).astype(np.int64))
    out = flat.new_empty(b * rows * cols, 3, wh * scale, ww * scale)  # RGB out, whatever frames went in
    for k in torch.unique(which).tolist():
        idx = torch.nonzero(which == k).squeeze(1)
        for start in range(0, len(idx), max_windows):
            part = idx[start : start + max_windows]
            out[part] = runners[k](flat[part]).float()
    return stitch(out.reshape(b, rows, cols, 3, wh * scale, ww * scale), grid, scale).clamp_(0, 1)


@torch.no_grad()
def upscale_planned(lr: torch.Tensor, runs: np.ndarray, shapes: Sequence[tuple[int, int]], scale: int,
                    runners: Sequence[Runner], first_frame: int = 0, max_windows: int = 64) -> torch.Tensor:
    """Execute plan runs (stdo.plan) over lr float [B, 3, h, w] in [0,1] -> SR float [B, 3, s·h, s·w] in [0,1].

    `runs` are the plan's rows for frames first_frame .. first_frame+B-1. Runs of one model and
    shape are batched; each output's kept rectangle is written straight into the frame buffer.
    """
    b, c, h, w = lr.shape
    out = lr.new_empty(b, c, h * scale, w * scale)
    # one window per distinct (frame, model, shape, y, x): runs sharing a window keep several rectangles of it
    windows_of, inverse = np.unique(runs[:, :5], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # each window's kept rectangles: kept[bounds[w]:bounds[w + 1]]
    kept, bounds = runs[order, 5:], np.searchsorted(inverse[order], np.arange(len(windows_of) + 1))
    groups = windows_of[:, 1] * len(shapes) + windows_of[:, 2]
    for key in np.unique(groups):
        ids = np.flatnonzero(groups == key)
        model, shape = int(windows_of[ids[0], 1]), int(windows_of[ids[0], 2])
        sh, sw = shapes[shape]
        for start in range(0, len(ids), max_windows):
            part = ids[start : start + max_windows]
            batch = lr.new_empty(len(part), c, sh, sw)
            for i, (t, _, _, y, x) in enumerate(windows_of[part]):
                batch[i] = lr[t - first_frame, :, y : y + sh, x : x + sw]
            sr = runners[model](batch)
            if tuple(sr.shape[-2:]) != (sh * scale, sw * scale):
                raise StdoError(f"model {model} turns a {sw}x{sh} window into {sr.shape[-1]}x{sr.shape[-2]}, not x{scale}: "
                                "the bundle's scale and its models disagree (export it again)")
            for i, window in enumerate(part):
                t, _, _, y, x = windows_of[window]
                for top, left, kh, kw in kept[bounds[window] : bounds[window + 1]]:
                    oy, ox = (top - y) * scale, (left - x) * scale
                    out[t - first_frame, :, top * scale : (top + kh) * scale, left * scale : (left + kw) * scale] = \
                        sr[i, :, oy : oy + kh * scale, ox : ox + kw * scale]
    return out.clamp_(0, 1)


def temporal_stack(lr: np.ndarray, first: int, count: int, radius: int) -> np.ndarray:
    """uint8 [count, h, w, 3·(2r+1)]: for each frame t of first .. first+count-1, frames t-r .. t+r stacked along
    channels (the clip's first and last frames repeated past its ends): a multi-frame model's input."""
    last = len(lr) - 1
    return np.stack([np.concatenate([lr[min(max(t + k, 0), last)] for k in range(-radius, radius + 1)], axis=-1)
                     for t in range(first, min(first + count, len(lr)))])


def lr_batches(lr: np.ndarray, frames_per_batch: int = 4, device: str = "cpu",
               radius: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first frame index, float [B, C, h, w] in [0, 1] on `device`) over uint8 LR frames [T, h, w, 3]; with a
    temporal radius r, frames t-r .. t+r stacked along channels (C = 3·(2r+1)), as a multi-frame model reads them."""
    for i in range(0, len(lr), frames_per_batch):
        frames = temporal_stack(lr, i, frames_per_batch, radius) if radius else lr[i : i + frames_per_batch]
        yield i, as_nchw(frames).to(device).float().div_(255)


def iter_upscaled(batches: Iterable[tuple[int, torch.Tensor]], grid: Grid, scale: int, model_map: np.ndarray,
                  runners: Sequence[Runner]) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (first frame index, SR frames float [B, 3, H, W] on 0..255, rounded, on the CPU) of LR `batches`
    (`lr_batches`), each patch by the runner the model map names."""
    for i, x in batches:
        sr = upscale_batch(x, grid, scale, model_map[i : i + len(x)], runners)
        yield i, sr.mul_(255).round_().cpu()
