"""Verification of a bundle's variants: each runs the bundle's plan over the verification frames as a client
would, against the fp32 torch models running the same plan and against HR."""

from __future__ import annotations

import numpy as np
from torch import nn

from stdo.export.convert import Variant
from stdo.infer import Runner, TimedRunner, upscale_planned
from stdo.metrics import PEAK, mse, psnr, psnr_from_mse, psnr_y
from stdo.plan import Plan
from stdo.progress import StageProgress
from stdo.resample import as_nchw
from stdo.rundir import Run

FP32_TARGET_DB = 100.0  # fp32 artifacts against the fp32 torch output


def verification_frames(total: int, wanted: int) -> np.ndarray:
    if wanted == 0 or wanted >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, wanted).round().astype(int))


def verify(run: Run, plan: Plan, models: list[nn.Module], runners: dict[str, list[Runner]], frames: np.ndarray,
           progress: StageProgress = None) -> dict:
    """PSNR of each variant executing the plan over the RUN's decoded LR `frames` against the fp32 torch models' and
    against HR (RGB and Y-PSNR), and its time per window.

    `runners` maps a variant label to one runner per model. Against torch: float outputs
    (no rounding), MSE over all verification frames. Against HR: rounded to 0..255 like a
    display, border shave = scale, mean of per-frame PSNR (the training report's psnr_video).
    """
    hr, lr, scale = run.hr, run.lr, run.scale
    timed = {label: [TimedRunner(r) for r in rs] for label, rs in runners.items()}
    sq_err = {label: 0.0 for label in runners}
    vs_hr: dict[str, list[np.ndarray]] = {label: [] for label in ["torch fp32", *runners]}
    y_vs_hr: dict[str, list[np.ndarray]] = {label: [] for label in runners}
    for t in frames:
        x = as_nchw(lr[t : t + 1]).float().div_(255)
        ref_hr = as_nchw(hr[t : t + 1]).float()
        runs = plan.frame_runs(int(t))
        ref = upscale_planned(x, runs, plan.shapes, scale, models, first_frame=int(t)).mul_(PEAK)
        vs_hr["torch fp32"].append(psnr(ref.round(), ref_hr, shave=scale).numpy())
        for label, rs in timed.items():
            out = upscale_planned(x, runs, plan.shapes, scale, rs, first_frame=int(t)).mul_(PEAK)
            sq_err[label] += float(mse(out, ref).sum())
            vs_hr[label].append(psnr(out.round(), ref_hr, shave=scale).numpy())
            y_vs_hr[label].append(psnr_y(out.round(), ref_hr, shave=scale).numpy())
        if progress:
            progress("verify", 1, len(frames))
    torch_hr = float(np.concatenate(vs_hr["torch fp32"]).mean())
    result = {"frames": [int(f) for f in frames], "torch_fp32_psnr_hr": torch_hr, "variants": {}}
    for label, rs in timed.items():
        hr_db = float(np.concatenate(vs_hr[label]).mean())
        windows = sum(r.windows for r in rs)
        result["variants"][label] = {
            "psnr_vs_torch": float(psnr_from_mse(sq_err[label] / len(frames))),
            "psnr_vs_hr": hr_db, "psnr_y_vs_hr": float(np.concatenate(y_vs_hr[label]).mean()),
            "delta_vs_torch_fp32": hr_db - torch_hr,
            "ms_per_window": 1000 * sum(r.seconds for r in rs) / max(windows, 1),
        }
    return result


def target_of(variant: Variant, figures: dict, int8_max_loss: float) -> str:
    """Whether a variant met its quality target: 'ok', what it missed, or '-' (fp16: none)."""
    if variant.precision == "fp32":
        return "ok" if figures["psnr_vs_torch"] >= FP32_TARGET_DB else f"below {FP32_TARGET_DB:.0f} dB vs torch"
    if variant.precision == "int8":
        ok = figures["delta_vs_torch_fp32"] >= -int8_max_loss
        return "ok" if ok else f"loses more than {int8_max_loss} dB"
    return "-"
