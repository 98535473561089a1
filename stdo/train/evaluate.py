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

from stdo.cluster.chunkmap import ChunkMap
from stdo.infer import Runner, iter_upscaled, lr_batches
from stdo.memory import release_free_memory
from stdo.scores import QualityScores
from stdo.resample import as_nchw, upscale_bicubic
from stdo.rundir import Run


def evaluate(run: Run, chunk_map: ChunkMap, model_map: np.ndarray, runners: Sequence[Runner], device: str = "cpu",
             progress: Callable[[int], None] | None = None, radius: int = 0) -> dict:
    """Metrics of the models (serving patches by `model_map`) over the RUN's decoded LR, and of bicubic on the same
    frames."""
    frames = iter_upscaled(lr_batches(run.lr, device=device, radius=radius), run.grid, run.scale, model_map, runners)
    return evaluate_frames(run, chunk_map, frames, progress)


def evaluate_frames(run: Run, chunk_map: ChunkMap, frames: Iterator[tuple[int, torch.Tensor]],
                    progress: Callable[[int], None] | None = None) -> dict:
    """Metrics of SR frames (first index, float [B,3,H,W] on 0..255) from any source, and of bicubic, against the
    RUN's HR frames; per chunk of `chunk_map`."""
    hr, lr, grid, scale = run.hr, run.lr, run.grid, run.scale
    chunks, num_chunks = chunk_map.chunks, chunk_map.num_chunks
    scores = QualityScores(scale, grid)
    for i, sr in frames:
        ref = as_nchw(hr[i : i + len(sr)]).float()
        scores.add("model", sr, ref)
        scores.add("bicubic", upscale_bicubic(lr[i : i + len(sr)], scale), ref)
        release_free_memory()  # frame-sized buffers freed: memory flat however long the clip (stdo.memory)
        if progress:
            progress(len(sr))
    return {**scores.summary("model", chunks, num_chunks), "bicubic": scores.summary("bicubic", chunks, num_chunks)}
