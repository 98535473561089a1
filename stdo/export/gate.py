"""Which models' updates pay for their bytes: each model against the prior clients already carry, on the patches it
serves, on the stream clients decode.

A model trained from a carried prior ships as a coded update of it. The update is worth its bytes only where the
PSNR it adds over the prior alone is more than those bytes would buy elsewhere: spent on the LR stream, they buy the
stream's own slope (dB per byte, which stdo-deliver measures between CRFs); a standalone export asks at least for a
gain. A model whose update does not pay is served by the prior itself (its update then holds nothing but the
format's wrapping), and every such model is merged into one, so the model map a client downloads codes fewer labels.

The gain of model i is measured on the bundle's own plan over the verification frames of the decoded LR: the squared
error of the played frames (rounded to 0..255, as a display shows them) with every model, and with model i's patches
upscaled by the prior instead; gain_i = 10·log10(SE with the prior on i's patches / SE with every model), so the
gains are in dB of the clip's PSNR, as the stream's slope is.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stdo.grid import patch_sums
from stdo.infer import upscale_planned
from stdo.metrics import PEAK
from stdo.plan import Plan
from stdo.priors import load_prior
from stdo.resample import as_nchw
from stdo.rundir import Run


@dataclass(frozen=True)
class Decision:
    """What one model's update is worth: `gain_db` of the clip's PSNR over the prior on its patches, for
    `update_bytes` (of the variant the bundle's headline counts); `pays` when the gain is above 0 and at least
    `db_per_kb` per KiB of update."""

    model: int
    patches: int
    gain_db: float
    update_bytes: int
    pays: bool

    def as_dict(self) -> dict:
        return {"model": self.model, "patches": self.patches, "gain_db": round(self.gain_db, 4),
                "update_bytes": self.update_bytes, "pays": self.pays}


def prior_model(like: nn.Module, carried_torch: Path) -> nn.Module:
    """The prior clients carry, as a module of the trained models' architecture (their updates code against it)."""
    weights, _ = load_prior(carried_torch)
    model = copy.deepcopy(like)
    model.load_state_dict(weights)
    return model.eval()


@torch.inference_mode()
def squared_errors(run: Run, plan: Plan, model_map: np.ndarray, models: list[nn.Module], prior: nn.Module,
                   frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared error with each model, with the prior) summed over the patches each model serves, per model, on the
    RUN's decoded LR `frames` against its HR frames."""
    hr, lr, grid, scale = run.hr, run.lr, run.grid, run.scale
    with_models, with_prior = np.zeros(len(models)), np.zeros(len(models))
    priors = [prior] * len(models)
    for t in frames:
        x = as_nchw(lr[t : t + 1]).float().div_(255)
        reference = as_nchw(hr[t : t + 1]).float()
        runs = plan.frame_runs(int(t))
        for runners, into in ((models, with_models), (priors, with_prior)):
            out = upscale_planned(x, runs, plan.shapes, scale, runners, first_frame=int(t)).mul_(PEAK).round_()
            error = ((out - reference) ** 2).sum(dim=1).numpy()  # [1, H, W]
            per_patch = patch_sums(error, grid, scale)[0]
            into += np.bincount(model_map[t].ravel(), weights=per_patch.ravel(), minlength=len(models))
    return with_models, with_prior


def decide(with_models: np.ndarray, with_prior: np.ndarray, model_map: np.ndarray, update_bytes: list[int],
           db_per_kb: float) -> list[Decision]:
    """Each model's Decision from the squared errors of `squared_errors`."""
    total = max(float(with_models.sum()), 1e-9)
    patches = np.bincount(model_map.ravel(), minlength=len(update_bytes))
    decisions = []
    for i, size in enumerate(update_bytes):
        gain = 10 * math.log10(max(total - with_models[i] + with_prior[i], 1e-9) / total)
        decisions.append(Decision(i, int(patches[i]), gain, int(size), gain > 0 and gain >= db_per_kb * size / 1024))
    return decisions


def merged(model_map: np.ndarray, decisions: list[Decision]) -> tuple[np.ndarray, list[int], bool]:
    """(the model map with every model whose update does not pay merged into one prior model, the old index of each
    kept model in its new order, whether the last model is the prior)."""
    kept = [d.model for d in decisions if d.pays]
    dropped = len(kept) < len(decisions)
    relabel = np.full(len(decisions), len(kept), dtype=model_map.dtype)  # every dropped model: the prior, last
    relabel[kept] = np.arange(len(kept), dtype=model_map.dtype)
    return relabel[model_map], kept, dropped
