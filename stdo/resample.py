"""Frames as torch tensors, and bicubic resizing (MATLAB imresize's kernel) on uint8 frames.

The one place the pipeline resizes pixels: the LR frames synthesized from HR, and the bicubic
baseline every score compares against. Needs torch, no video library.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stdo.errors import StdoError


def as_nchw(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> uint8 tensor [T, 3, H, W] (a view of contiguous, writable input;
    read-only input such as a memory-mapped RUN is copied, since torch tensors are always writable)."""
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:
        frames = frames.copy()
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def frames_per_batch(height: int, width: int, pixel_budget: int = 2_000_000) -> int:
    """How many frames of this size to process at once so float work buffers stay near pixel_budget·12 bytes."""
    return max(1, pixel_budget // (height * width))


def downscale_bicubic(frames: np.ndarray, scale: int, stripe_rows: int = 64, out: np.ndarray | None = None) -> np.ndarray:
    """Bicubic downscaling with antialias (the kernel stretched by `scale`, as MATLAB's imresize).

    Frames must be a multiple of `scale` in size. Works on stripes of `stripe_rows` LR rows
    (plus the 2·scale HR rows the stretched kernel reads on each side, rounded up) so that
    work buffers stay a few MB; the result equals whole-frame resizing.
    """
    t, h, w, c = frames.shape
    if h % scale or w % scale:
        raise StdoError(f"frames of {w}x{h} are not a multiple of x{scale}: crop them first")
    lh, lw = h // scale, w // scale
    context = 3  # LR rows of context: covers the kernel's 2·scale HR rows
    out = np.empty((t, lh, lw, c), np.uint8) if out is None else out
    batch = frames_per_batch((stripe_rows + 2 * context) * scale, w, pixel_budget=500_000)
    for i in range(0, t, batch):
        for j0 in range(0, lh, stripe_rows):
            j1 = min(j0 + stripe_rows, lh)
            a, b = max(j0 - context, 0), min(j1 + context, lh)
            x = as_nchw(frames[i : i + batch, a * scale : b * scale])
            y = F.interpolate(x.float(), size=(b - a, lw), mode="bicubic", antialias=True, align_corners=False)
            out[i : i + batch, j0:j1] = y[:, :, j0 - a : j1 - a].round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def upscale_bicubic(frames: np.ndarray, scale: int) -> torch.Tensor:
    """Bicubic upsampling of uint8 T×h×w×3 frames: float32 T×3×(h·s)×(w·s), rounded to 0..255 like a display.

    The cubic kernel has a = -0.5 as in MATLAB's imresize and PIL (torch's antialias path;
    its plain bicubic uses OpenCV's a = -0.75). Antialiasing itself does nothing when enlarging.
    """
    x = as_nchw(frames).float()
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255)
