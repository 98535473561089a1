"""Whole-clip inference of the video models (brvsr, vinr), and vinr's two extra questions.

- brvsr runs its two recurrences over segments of the clip (the backward states of a segment are
  kept until the forward pass uses them, so memory grows with the segment, not the clip; the
  propagation restarts at each segment's first frame). Its steps are the torch modules, or any
  callables of the same signature (the exported ONNX graphs on onnxruntime).
- vinr reads frames t and t+1 and is queried at time 0 (the last frame: frames T-2, T-1 at time 1).
  `vinr_any_scale` queries it at another output size; `vinr_between` drops every other LR frame and
  queries the pair around each dropped frame at time 1/2 (2x frame rate).

Every iterator yields (first frame index, SR frames float [B,3,H,W] on 0..255, rounded) like
stdo.infer.iter_upscaled.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from stdo.flow import neighbour_flows
from stdo.metrics import psnr, psnr_y, ssim
from stdo.models.brvsr import BRVSR, run_recurrence
from stdo.models.vinr import VINR
from stdo.resample import as_nchw

Frames = Iterator[tuple[int, torch.Tensor]]


def _display(x: torch.Tensor) -> torch.Tensor:
    return x.float().clamp_(0, 1).mul_(255).round_().cpu()


@torch.no_grad()
def brvsr_frames(model: BRVSR, lr: np.ndarray, device: str = "cpu", segment: int = 64,
                 steps: tuple[Callable, Callable] | None = None) -> Frames:
    """SR frames of brvsr over uint8 LR frames [T, h, w, 3] (steps: (backward, forward) replacing the modules)."""
    backward_step, forward_step = steps or (model.backward_step, model.forward_step)
    for start in range(0, len(lr), segment):
        part = lr[start : start + segment]
        forward, backward = (torch.from_numpy(f).permute(0, 3, 1, 2)[None].to(device) for f in neighbour_flows(part))
        frames = as_nchw(part).to(device).float().div_(255)[None]
        for t, sr in run_recurrence(frames, forward, backward, backward_step, forward_step, model.config.channels):
            yield start + t, _display(sr)


def _vinr_pairs(lr: np.ndarray, ids: list[tuple[int, int, float]], model: VINR, size: tuple[int, int],
                device: str, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(index, SR) of each (frame a, frame b, time) in ids, `batch` at a time."""
    for i in range(0, len(ids), batch):
        part = ids[i : i + batch]
        pairs = torch.cat((as_nchw(lr[[a for a, _, _ in part]]), as_nchw(lr[[b for _, b, _ in part]])), 1)
        times = torch.tensor([t for _, _, t in part], dtype=torch.float32, device=device)
        yield i, _display(model.upscale(pairs.to(device).float().div_(255), times, *size))


def _clip_pairs(frames: int) -> list[tuple[int, int, float]]:
    if frames == 1:
        return [(0, 0, 0.0)]
    return [(t, t + 1, 0.0) for t in range(frames - 1)] + [(frames - 2, frames - 1, 1.0)]


@torch.no_grad()
def vinr_frames(model: VINR, lr: np.ndarray, device: str = "cpu", batch: int = 4,
                size: tuple[int, int] | None = None) -> Frames:
    """SR frames of vinr at the clip's scale (or at `size` (h, w))."""
    scale = model.config.scale
    size = size or (lr.shape[1] * scale, lr.shape[2] * scale)
    yield from _vinr_pairs(lr, _clip_pairs(len(lr)), model, size, device, batch)


def video_frames(model: torch.nn.Module, lr: np.ndarray, device: str = "cpu", batch: int = 4) -> Frames:
    """SR frames of a video model at the clip's scale."""
    if isinstance(model, BRVSR):
        return brvsr_frames(model, lr, device)
    if isinstance(model, VINR):
        return vinr_frames(model, lr, device, batch)
    raise TypeError(f"{type(model).__name__} is not a video model")


def _scores(sr: torch.Tensor, ref: torch.Tensor, shave: int) -> np.ndarray:
    return np.stack([psnr(sr, ref, shave=shave).numpy(), psnr_y(sr, ref, shave=shave).numpy(),
                     ssim(sr, ref, shave=shave).numpy()], 1)


def _summary(model: list[np.ndarray], bicubic: list[np.ndarray]) -> dict:
    m, b = np.concatenate(model).mean(0), np.concatenate(bicubic).mean(0)
    return {"psnr": float(m[0]), "psnr_y": float(m[1]), "ssim": float(m[2]),
            "bicubic": {"psnr": float(b[0]), "psnr_y": float(b[1]), "ssim": float(b[2])}}


def resize(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [T, h, w, 3] -> float [T, 3, size] on 0..255 rounded: bicubic (a = -0.5), antialiased when shrinking."""
    x = F.interpolate(as_nchw(frames).float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255)


@torch.no_grad()
def vinr_any_scale(model: VINR, hr: np.ndarray, lr: np.ndarray, scale: float, device: str = "cpu",
                   batch: int = 4) -> dict:
    """vinr at a scale the RUN does not have: the reference is the HR frames resized to round(scale x LR size),
    the baseline LR bicubic to that size."""
    size = (int(round(lr.shape[1] * scale)), int(round(lr.shape[2] * scale)))
    shave = int(np.ceil(scale))
    model_scores, bicubic_scores = [], []
    for i, sr in vinr_frames(model, lr, device, batch, size):
        ref = resize(hr[i : i + len(sr)], size)
        model_scores.append(_scores(sr, ref, shave))
        bicubic_scores.append(_scores(resize(lr[i : i + len(sr)], size), ref, shave))
    return {"scale": scale, "size": [size[1], size[0]], **_summary(model_scores, bicubic_scores)}


@torch.no_grad()
def vinr_between(model: VINR, hr: np.ndarray, lr: np.ndarray, device: str = "cpu", batch: int = 4) -> dict | None:
    """2x frame rate: with the odd LR frames dropped, each odd HR frame from the even LR frames around it at
    time 1/2; the baseline is the mean of the two bicubic frames (frame blending). None below 3 frames."""
    dropped = list(range(1, len(lr) - 1, 2))
    if not dropped:
        return None
    scale = model.config.scale
    size = (lr.shape[1] * scale, lr.shape[2] * scale)
    model_scores, bicubic_scores = [], []
    ids = [(t - 1, t + 1, 0.5) for t in dropped]
    for i, sr in _vinr_pairs(lr, ids, model, size, device, batch):
        frames = dropped[i : i + len(sr)]
        ref = as_nchw(hr[frames]).float()
        blend = ((resize(lr[[t - 1 for t in frames]], size) + resize(lr[[t + 1 for t in frames]], size)) / 2).round_()
        model_scores.append(_scores(sr, ref, scale))
        bicubic_scores.append(_scores(blend, ref, scale))
    return {"frames": len(dropped), **_summary(model_scores, bicubic_scores)}


def vinr_evaluations(model: VINR, hr: np.ndarray, lr: np.ndarray, scale: int, device: str = "cpu") -> dict:
    """What vinr can do beyond the RUN's scale (its method entry's `evaluations`): a scale between (any_scale) and
    twice the frame rate (frame_rate_2x)."""
    return {"any_scale": vinr_any_scale(model, hr, lr, scale - 0.5, device),
            "frame_rate_2x": vinr_between(model, hr, lr, device)}
