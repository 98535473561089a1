"""One scorer of played or evaluated frames against HR: training's evaluation, stdo-play and stdo-upscale all
measure with it, so their figures are the same measurement.

For each named output ("model", "bicubic") it keeps the per-frame RGB PSNR, Y-PSNR (BT.601 luma) and SSIM
against the HR frames, each with a border shave of `scale` pixels (what a viewer sees), and, where asked, each
patch's MSE with STDO's shave for the STDO-protocol aggregate (stdo.metrics).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from stdo.grid import Grid
from stdo.metrics import chunk_mse, count_weighted_psnr, patch_mse, psnr, psnr_from_mse, psnr_y, ssim, stdo_shave

METRICS = ("psnr", "psnr_y", "ssim")


class QualityScores:
    """Per-frame quality of named outputs against HR; `add` takes float frames [B, 3, H, W] on 0..255."""

    def __init__(self, scale: int, grid: Grid | None = None) -> None:
        self.scale, self.grid = scale, grid  # a grid: also each patch's MSE (STDO's protocol)
        self._frames: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: {m: [] for m in METRICS})
        self._patch_mse: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, name: str, sr: torch.Tensor, hr: torch.Tensor) -> None:
        scores = self._frames[name]
        for metric, fn in zip(METRICS, (psnr, psnr_y, ssim)):
            scores[metric].append(fn(sr, hr, shave=self.scale).numpy())
        if self.grid is not None:
            self._patch_mse[name].append(patch_mse(sr, hr, self.grid, self.scale, stdo_shave(self.scale)))

    def __bool__(self) -> bool:
        return bool(self._frames)

    def has(self, name: str) -> bool:
        return name in self._frames

    def per_frame(self, name: str, metric: str = "psnr") -> np.ndarray:
        return np.concatenate(self._frames[name][metric])

    def mean(self, name: str, metric: str = "psnr") -> float:
        return float(self.per_frame(name, metric).mean())

    def summary(self, name: str, chunks: np.ndarray, num_chunks: int) -> dict:
        """Training's evaluation report of one output: whole-video figures, STDO's aggregate, per chunk and frame."""
        mses, counts = chunk_mse(np.concatenate(self._patch_mse[name]), chunks, num_chunks)
        frame_psnr = self.per_frame(name)
        return {
            "psnr_video": float(frame_psnr.mean()),
            "psnr_y_video": self.mean(name, "psnr_y"),
            "psnr_stdo": count_weighted_psnr(mses, counts),
            "ssim": self.mean(name, "ssim"),
            "chunks": [{"chunk": i, "patches": int(n), "mse": float(m), "psnr": float(psnr_from_mse(m))}
                       for i, (m, n) in enumerate(zip(mses, counts))],
            "psnr_per_frame": [round(float(p), 4) for p in frame_psnr],
        }

    def model_and_bicubic(self) -> dict:
        """The player's and stdo-upscale's figures: means of "model" and "bicubic"."""
        return {"model": self.mean("model"), "model_y": self.mean("model", "psnr_y"),
                "model_ssim": self.mean("model", "ssim"), "bicubic": self.mean("bicubic"),
                "bicubic_y": self.mean("bicubic", "psnr_y"), "bicubic_ssim": self.mean("bicubic", "ssim")}
