"""Evaluation after training: what a viewer sees, and the STDO protocol, beside bicubic.

- psnr_video: whole-frame RGB PSNR of the stitched frames (border shave = scale), mean over frames;
- psnr_y_video: the same on the BT.601 luma (Y-PSNR, as SR papers report);
- psnr_stdo: per-patch MSE with a shave of scale+4, count-weighted over the RUN's chunks;
- ssim: luma SSIM of the stitched frames, mean over frames;
- chunks: MSE and PSNR of each chunk of the RUN (STDO shave), with its patch count.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from stdo.grid import Grid
from stdo.infer import Runner, iter_upscaled
from stdo.memory import release_free_memory
from stdo.metrics import chunk_mse, count_weighted_psnr, patch_mse, psnr, psnr_from_mse, psnr_y, ssim, stdo_shave
from stdo.video import as_nchw, upscale_bicubic


class _Accumulator:
    def __init__(self) -> None:
        self.frame_psnr: list[np.ndarray] = []
        self.frame_psnr_y: list[np.ndarray] = []
        self.frame_ssim: list[np.ndarray] = []
        self.patch_mse: list[np.ndarray] = []

    def add(self, sr: torch.Tensor, hr: torch.Tensor, grid: Grid, scale: int) -> None:
        self.frame_psnr.append(psnr(sr, hr, shave=scale).numpy())
        self.frame_psnr_y.append(psnr_y(sr, hr, shave=scale).numpy())
        self.frame_ssim.append(ssim(sr, hr, shave=scale).numpy())
        self.patch_mse.append(patch_mse(sr, hr, grid, scale, stdo_shave(scale)))

    def summary(self, chunks: np.ndarray, num_chunks: int) -> dict:
        per_patch = np.concatenate(self.patch_mse)
        mses, counts = chunk_mse(per_patch, chunks, num_chunks)
        frame_psnr = np.concatenate(self.frame_psnr)
        return {
            "psnr_video": float(frame_psnr.mean()),
            "psnr_y_video": float(np.concatenate(self.frame_psnr_y).mean()),
            "psnr_stdo": count_weighted_psnr(mses, counts),
            "ssim": float(np.concatenate(self.frame_ssim).mean()),
            "chunks": [{"chunk": i, "patches": int(n), "mse": float(m), "psnr": float(psnr_from_mse(m))}
                       for i, (m, n) in enumerate(zip(mses, counts))],
            "psnr_per_frame": [round(float(p), 4) for p in frame_psnr],
        }


def evaluate(hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, chunks: np.ndarray, num_chunks: int,
             model_map: np.ndarray, runners: Sequence[Runner], device: str = "cpu",
             progress: Callable[[int], None] | None = None, radius: int = 0) -> dict:
    """Metrics of the models (serving patches by `model_map`) and of bicubic on the same frames."""
    frames = iter_upscaled(lr, grid, scale, model_map, runners, device=device, radius=radius)
    return evaluate_frames(hr, lr, grid, scale, chunks, num_chunks, frames, progress)


def evaluate_frames(hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, chunks: np.ndarray, num_chunks: int,
                    frames: Iterator[tuple[int, torch.Tensor]], progress: Callable[[int], None] | None = None) -> dict:
    """Metrics of SR frames (first index, float [B,3,H,W] on 0..255) from any source, and of bicubic."""
    model_acc, bicubic_acc = _Accumulator(), _Accumulator()
    for i, sr in frames:
        ref = as_nchw(hr[i : i + len(sr)]).float()
        model_acc.add(sr, ref, grid, scale)
        bicubic_acc.add(upscale_bicubic(lr[i : i + len(sr)], scale), ref, grid, scale)
        release_free_memory()  # frame-sized buffers freed: memory flat however long the clip (stdo.memory)
        if progress:
            progress(len(sr))
    return {**model_acc.summary(chunks, num_chunks), "bicubic": bicubic_acc.summary(chunks, num_chunks)}
