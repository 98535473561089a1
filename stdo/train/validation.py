"""A prior's held-out validation: PSNR on whole coded frames it never trains on, and the curve over steps.

The kept state of a long general training is the one that does best on content it has not seen, not
on its own crops. Each evaluation runs the model over every frame of a validation prior set (whole
LR frames, as a client runs it; RGB PSNR against HR with a border of `scale` pixels shaved) and
records (step, PSNR, gain over bicubic of the same LR) in `curve.json`, with the weights of that step
in `snapshots/` (a benchmark measures the int8 files of the same steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from stdo.fileio import read_json, save_torch, write_json
from stdo.metrics import mse, psnr_from_mse
from stdo.resample import as_nchw, upscale_bicubic
from stdo.train.priorset import open_prior_set

BATCH = 16


def frames_psnr(hr: np.ndarray, lr: np.ndarray, upscale: Callable[[np.ndarray], torch.Tensor], scale: int) -> float:
    """RGB PSNR over all frames of upscale(uint8 LR frames) -> float [B, 3, H, W] in [0, 1], rounded to 8 bits as a
    display shows it, against the uint8 HR frames, a border of `scale` pixels shaved."""
    total = 0.0
    for a in range(0, len(lr), BATCH):
        sr = upscale(np.asarray(lr[a : a + BATCH])).float().cpu().clamp(0, 1)
        total += float(mse((sr * 255).round(), as_nchw(hr[a : a + BATCH]).float(), shave=scale).sum())
    return float(psnr_from_mse(total / len(lr)))


class Validation:
    def __init__(self, folder: Path, scale: int, device: str, out: Path) -> None:
        self.hr, self.lr, _ = open_prior_set(folder, scale)
        self.scale, self.device, self.out = scale, torch.device(device), Path(out)
        self.bicubic = frames_psnr(self.hr, self.lr, lambda lr: upscale_bicubic(lr, scale) / 255, scale)

    @torch.no_grad()
    def __call__(self, step: int, model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        score = frames_psnr(self.hr, self.lr, lambda lr: model(as_nchw(lr).float().div(255).to(self.device)),
                            self.scale)
        model.train(was_training)
        snapshots = self.out / "snapshots"
        snapshots.mkdir(parents=True, exist_ok=True)
        save_torch(snapshots / f"step{step:07d}.pt", {k: v.detach().cpu() for k, v in model.state_dict().items()})
        path = self.out / "curve.json"
        curve = read_json(path) if path.is_file() else {"bicubic_psnr": self.bicubic, "points": []}
        curve["points"] = [p for p in curve["points"] if p["step"] < step]  # a resume repeats nothing
        curve["points"].append({"step": step, "psnr": score, "gain": score - self.bicubic})
        write_json(path, curve)
        return score
