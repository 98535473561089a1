"""A general WDSR trained over a set of clips: the checkpoint `stdo-cluster --scorer general` scores with.

STDO scores patches by how well a general (not overfitted) SR model upscales them, and the prior a
client carries (stdo.priors) is such a model; no pretrained SR weights are reachable here, so this
trains one on the clips and photographs the user gives: frames from each clip (a photograph panned into
a short clip, stdo.train.priordata), LR made by bicubic downscaling (as the released models were
trained) and, with `crf`, coded by the shipped codec at each of those CRFs (what a client decodes:
the prior is codec-aware), random crops from all clips in proportion to their frame counts, the same
loop as stdo-train (Adam, L1, warmup + cosine, the best evaluated state kept, checkpoints to resume).
The output is a bare WDSR state dict, the format `load_wdsr` (and so `--scorer general --checkpoint`
and `stdo-train --init`) reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from stdo.errors import StdoError, check_device
from stdo.fileio import save_torch
from stdo.grid import Grid
from stdo.options import CommaList, flag, same_as
from stdo.locks import stage_lock
from stdo.models import create_model
from stdo.priors import load_prior
from stdo.rundir import fingerprint
from stdo.train.data import ClipFrames, PatchSampler
from stdo.train.methods import MethodOptions
from stdo.train.loop import Job, ProgressFn, TrainConfig, config_signature, train_job
from stdo.train.sampling import ChunkSampler
from stdo.stream import StreamOptions
from stdo.train.priordata import codec_round_trip, image_clip, is_image
from stdo.clip import Cut, load_clip
from stdo.train.priorset import is_prior_set, open_prior_set
from stdo.train.validation import Validation

log = logging.getLogger(__name__)


@dataclass
class GeneralOptions:
    """What stdo-general does; each field is the command's flag of the same name."""

    sources: list[Path]
    out: Path
    scale: int = flag(4, "Upscaling factor the model learns.")
    model: str = same_as(MethodOptions, "model", default="wdsr_a")  # wdsr_a: the released STDO scorer's size
    frames: int = flag(60, "Frames from the start of each clip (a photograph is panned over at most 16).")
    crf: tuple[int, ...] = flag((), "Code the LR frames with --codec at each of these CRFs (codec-aware, as a prior "
                                "is trained)  [default: clean bicubic LR]", type=CommaList(item=int, example="18,23,28"))
    codec: str = same_as(StreamOptions, "codec")
    config: TrainConfig = field(default_factory=TrainConfig)
    overwrite: bool = flag(False, "Replace --out if it exists.")
    context: int = flag(8, "LR pixels read around each crop (the loss covers the crop only).")
    validation: Path | None = flag(None, "A held-out prior set (python -m stdo.train.priorset): it picks the kept "
                                   "state, and its PSNR over bicubic at each evaluation is the curve.",
                                   type=click.Path(path_type=Path))
    work: Path | None = flag(None, "Folder of the resumable state, snapshots and validation curve  [default: beside "
                             "--out]", type=click.Path(path_type=Path))
    init: Path | None = flag(None, "Start from this checkpoint's weights (continue a prior on more steps or content).",
                             type=click.Path(path_type=Path, dir_okay=False))


def _check(o: GeneralOptions) -> None:
    if not o.sources:
        raise StdoError("give at least one clip to train on")
    for source in o.sources:
        if not Path(source).exists():
            raise StdoError(f"{source} does not exist: give video files or folders of frames")
        if o.crf and is_prior_set(Path(source)):
            raise StdoError(f"{source} is a prior set, its LR already coded: drop `crf`")
    if o.validation is not None and not is_prior_set(Path(o.validation)):
        raise StdoError(f"`validation` {o.validation} is not a prior set: build one with stdo.train.priorset")
    if o.context < 0:
        raise StdoError(f"`context` {o.context} is below 0: give the LR pixels read around each crop")
    if Path(o.out).suffix != ".pt":
        raise StdoError(f"`out` {o.out}: give a .pt file")
    if Path(o.out).exists() and not o.overwrite:
        raise StdoError(f"`out` {o.out} exists: give another path, or `overwrite` to replace it")
    if o.init is not None and not Path(o.init).is_file():
        raise StdoError(f"`init` {o.init} does not exist: give a stdo-general checkpoint to start from")
    if o.frames <= 0 or o.config.steps <= 0:
        raise StdoError("`frames` and `steps` must be above 0")
    for crf in o.crf:
        StreamOptions(codec=o.codec, crf=crf).check()
    check_device(o.config.device)


def _pair(source: Path, o: GeneralOptions) -> tuple[np.ndarray, list[np.ndarray]]:
    """(HR frames, the LR versions to learn from) of one source: bicubic LR, or that LR through the codec at
    each of o.crf."""
    if is_prior_set(source):
        hr, lr, _ = open_prior_set(source, o.scale)
        return hr, [lr]
    if is_image(source):
        hr, lr = image_clip(source, min(o.frames, 16), o.scale)
    else:
        clip = load_clip(source, o.scale, Cut(frames=o.frames))
        hr, lr = clip.hr, clip.lr
    return hr, [codec_round_trip(lr, crf, o.codec) for crf in o.crf] if o.crf else [lr]


def train_general(o: GeneralOptions, progress: ProgressFn = None) -> dict:
    """Train the general model and write it to o.out; rerunning the same command resumes."""
    _check(o)
    out = Path(o.out)
    work = Path(o.work) if o.work is not None else out.parent
    work.mkdir(parents=True, exist_ok=True)
    state = work / f".{out.name}.state.pt"  # until the output is written (a wsd run keeps its stable state)
    with stage_lock(out.parent, f"{out}", name=f".stdo-{out.name}.lock"):
        pairs = [_pair(Path(source), o) for source in o.sources]
        # one window size for every batch, whatever the clips' sizes: crop and context fit the smallest LR frame
        smallest = min(min(lr.shape[1:3]) for _, lrs in pairs for lr in lrs)
        crop = min(o.config.crop_size, smallest)
        context = min(o.context, (smallest - crop) // 2)
        groups, frames = [], 0
        for hr, lrs in pairs:
            for lr in lrs:
                t, h, w, _ = lr.shape
                groups.append(PatchSampler(ClipFrames(hr, lr, Grid(h, w, 1, 1, margin=8), o.scale),
                                           np.array([[i, 0, 0] for i in range(t)]), crop=crop, context=context,
                                           augment=o.config.augment))
                frames += t
        model = create_model(o.model, scale=o.scale)
        start = None
        if o.init is not None:
            weights, start = load_prior(Path(o.init))
            try:
                model.load_state_dict(weights)
            except RuntimeError:
                raise StdoError(f"`init` {o.init} is not a {o.model} at x{o.scale}: give a checkpoint of the same "
                                "model and scale") from None
        validation = Validation(o.validation, o.scale, o.config.device, work / f".{out.name}.curve") \
            if o.validation is not None else None
        job = Job("general", model, o.config.steps, ChunkSampler(groups), evaluate=validation)
        extendable = o.config.schedule == "wsd"  # its steps may grow on a resume (loop.wsd_factor)
        signature = {"general": 1, "sources": [fingerprint(Path(s)) for s in o.sources], "scale": o.scale,
                     "model": o.model, "frames": o.frames, "crfs": list(o.crf), "codec": o.codec,
                     "context": o.context, "validation": fingerprint(Path(o.validation)) if o.validation else None,
                     "init": start,  # the sha256 of the weights it started from
                     "train": config_signature(o.config, leave_out=("steps",) if extendable else ())}
        result = train_job(job, o.config, state, signature, progress,
                           runtime={"device": o.config.device, "amp": o.config.amp, "compile": o.config.compile})
        save_torch(out, job.model.cpu().state_dict())
        if not extendable:
            state.unlink(missing_ok=True)
    evaluations = dict(result.evaluations)
    if validation is not None:
        evaluations[0] = validation.bicubic  # what the gain is over
    return {"out": str(out), "clips": len(o.sources), "frames": frames, "steps": result.steps,
            "kept_step": result.kept_step, "params": sum(p.numel() for p in model.parameters()),
            "eval_psnr": evaluations.get(result.kept_step), "eval_psnr_start": evaluations.get(0),
            "seconds": result.seconds}
