"""A general WDSR trained over a set of clips: the checkpoint `stdo-cluster --scorer general` scores with.

STDO scores patches by how well a general (not overfitted) SR model upscales them; no pretrained SR
weights are reachable here, so this trains one on clips the user gives (by default the built-in
ones): frames from each clip, LR made by bicubic downscaling (as the released models were trained),
random crops from all clips in proportion to their frame counts, the same loop as stdo-train (Adam,
L1, warmup + cosine, the best evaluated state kept, checkpoints to resume). The output is a bare
WDSR state dict, the format `load_wdsr` (and so `--scorer general --checkpoint`) reads.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stdo.errors import StdoError, check_device
from stdo.fileio import save_torch
from stdo.grid import Grid
from stdo.locks import stage_lock
from stdo.models import create_model
from stdo.rundir import fingerprint
from stdo.train.data import PatchSampler
from stdo.train.loop import Job, ProgressFn, TrainConfig, train_job
from stdo.train.sampling import ChunkSampler
from stdo.video import load_clip

log = logging.getLogger(__name__)


@dataclass
class GeneralOptions:
    sources: list[Path]
    out: Path
    scale: int = 4
    model: str = "wdsr_a"
    frames: int = 60  # from the start of each clip
    config: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000))
    overwrite: bool = False


def _check(o: GeneralOptions) -> None:
    if not o.sources:
        raise StdoError("give at least one clip to train on")
    for source in o.sources:
        if not Path(source).exists():
            raise StdoError(f"{source} does not exist: give video files or folders of frames")
    if Path(o.out).suffix != ".pt":
        raise StdoError(f"--out {o.out}: give a .pt file")
    if Path(o.out).exists() and not o.overwrite:
        raise StdoError(f"--out {o.out} exists: give another path, or --overwrite to replace it")
    if o.frames <= 0 or o.config.steps <= 0:
        raise StdoError("--frames and --steps must be above 0")
    check_device(o.config.device)


def train_general(o: GeneralOptions, progress: ProgressFn = None) -> dict:
    """Train the general model and write it to o.out; rerunning the same command resumes."""
    _check(o)
    out = Path(o.out)
    state = out.parent / f".{out.name}.state.pt"  # beside the output until it is written
    with stage_lock(out.parent, f"{out}", name=f".stdo-{out.name}.lock"):
        clips = [load_clip(Path(source), o.scale, count=o.frames) for source in o.sources]
        # one window size for every batch, whatever the clips' sizes: crop and context fit the smallest LR frame
        smallest = min(min(c.lr.shape[1:3]) for c in clips)
        crop = min(o.config.crop, smallest)
        context = min(8, (smallest - crop) // 2)
        groups, frames = [], 0
        for clip in clips:
            t, h, w, _ = clip.lr.shape
            groups.append(PatchSampler(clip.hr, clip.lr, Grid(h, w, 1, 1, margin=8), o.scale,
                                       np.array([[i, 0, 0] for i in range(t)]), crop=crop, context=context,
                                       augment=o.config.augment))
            frames += t
        model = create_model(o.model, scale=o.scale)
        job = Job("general", model, o.config.steps, ChunkSampler(groups))
        signature = {"general": 1, "sources": [fingerprint(Path(s)) for s in o.sources], "scale": o.scale,
                     "model": o.model, "frames": o.frames,
                     "train": {k: v for k, v in asdict(o.config).items() if k not in ("device", "amp", "compile")}}
        result = train_job(job, o.config, state, signature, progress,
                           runtime={"device": o.config.device, "amp": o.config.amp, "compile": o.config.compile})
        save_torch(out, job.model.cpu().state_dict())
        state.unlink(missing_ok=True)
    evaluations = dict(result.evaluations)
    return {"out": str(out), "clips": len(o.sources), "frames": frames, "steps": result.steps,
            "kept_step": result.kept_step, "params": sum(p.numel() for p in model.parameters()),
            "eval_psnr": evaluations.get(result.kept_step), "eval_psnr_start": evaluations.get(0),
            "seconds": result.seconds}
