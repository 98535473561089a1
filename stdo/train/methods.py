"""The training methods, all over the same RUN, each as a plan: jobs to train, and which
model serves which patch (the method's model map).

- stdo:  one model per chunk of the RUN, trained on that chunk's patches. By default from a joint start:
         jstdo's run for a share f of the steps (--joint-start, 0.75), then one copy per chunk runs the rest
         of that run's learning-rate schedule on its chunk (f = 0: plain stdo; f = 1: jstdo's model
         copied per chunk). benchmarks/joint_start.py measures the share.
- jstdo: one joint model over all chunks, batches drawn chunk by chunk with the
         data-aware rule of stdo.train.sampling (or uniformly, to compare).
- awdnn: one model for the whole clip.
- nas:   one model per temporal segment (contiguous, equal frame counts).
- cafm:  a shared backbone with per-chunk modulation; chunks are temporal segments as in
         CaFM, or the RUN's STDO chunks. Exported as one folded WDSR per chunk.

Server-side methods (upscaling on a server, beside the on-device ones):
- mfwdsr:     one multi-frame WDSR over the whole clip, reading frames t-r .. t+r at once (early
              fusion, the WDSR code's temporal_size; --radius r, 0 = the single-frame control of
              equal width).
- wdsr-large: one single-frame WDSR of a few million parameters (the model registry's wdsr_large):
              the "just use a bigger model" option.
- brvsr:      bidirectional recurrent VSR (BasicVSR family) over sequences of --sequence frames, aligned
              by OpenCV's DIS flow on the LR frames (stdo.models.brvsr).
- vinr:       continuous space-time SR (VideoINR style): two frames in, an implicit decoder queried at any
              (x, y, t); trained on pairs one and two frames apart at the RUN's scale and at scales in
              [1, scale] (stdo.models.vinr).

The step budget is the method's total: per-model methods split it evenly over their
models, so methods compare at equal cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch
from torch import nn

from stdo.errors import StdoError
from stdo.fileio import read_json, save_torch
from stdo.options import flag
from stdo.models import create_model, list_models, load_model, model_checkpoint
from stdo.models.cafm import CaFMWDSR
from stdo.rundir import MODEL_MAP, REPORT, model_file
from stdo.train.clipdata import PairSampler, SequenceSampler
from stdo.train.data import ClipFrames, PatchSampler, patches_of
from stdo.train.loop import Job, TrainConfig
from stdo.train.sampling import WEIGHTINGS, ChunkSampler
from stdo.train.sparse import SparseProjection, moves_sparsely

CAFM_CHUNKS = ("time", "stdo")
TUNES = ("all", "channels", "biases", "sparse")
MODEL_FIELDS = {"blocks": "num_blocks", "units": "num_residual_units", "width": "width_multiplier"}  # -> create_model


@dataclass
class MethodOptions:
    model: str = flag("wdsr_a_mobile", "wdsr_a: STDO's 16 blocks x 32 units x width 4; wdsr_a_mobile: 4 x 16 x 4.",
                      type=click.Choice(list_models(patch=True)))
    blocks: int | None = flag(None, "Resize the model: residual blocks (brvsr: per step; vinr: encoder).", type=int)
    units: int | None = flag(None, "Resize the model: residual units (channels; brvsr/vinr: feature channels).",
                             type=int)
    width: float | None = flag(None, "Resize the model: the width multiplier inside blocks.", type=float)
    segments: int | None = flag(None, "Time segments for nas and cafm [default: the RUN's chunk count].", type=int)
    cafm_chunks: str = flag("time", "What cafm modulates by: time segments (CaFM) or the RUN's STDO chunks.",
                            type=click.Choice(CAFM_CHUNKS))
    sampling: str = flag("error", "jstdo: draw chunks by count x current error, or by count alone.",
                         type=click.Choice(WEIGHTINGS))
    radius: int = flag(1, "mfwdsr: frames t-r .. t+r read at once; 0 = the single-frame control of equal width.")
    sequence: int = flag(5, "brvsr: consecutive frames per training sample (the recurrence runs over them).")
    joint_start: float | None = flag(None, "stdo, cafm: share of the steps spent first on one joint model (jstdo's) "
                                     "that every chunk's model (cafm: the shared backbone) then starts from, running "
                                     "the rest of its learning-rate schedule; 0 = plain, 1 = jstdo's model copied per "
                                     "chunk.  [default: stdo 0.75, cafm 0]", type=float)
    init: str = flag("prior", "Where on-device models start: prior (the shipped prior of --model at the RUN's scale, "
                     "which clients carry, when there is one and the model is not resized; else scratch), scratch "
                     "(bicubic), or a stdo-general checkpoint.", metavar="prior|scratch|PATH")
    tune: str | None = flag(None, "What training may change of its start: all weights, channels (each conv's "
                            "per-channel gain and bias: a small update of a prior, a few KB per model in int8), "
                            "biases, or sparse (channels plus the --sparse-share of the conv weights that move most "
                            "from the prior).  [default: channels from a prior, all from scratch]",
                            type=click.Choice(TUNES))
    sparse_share: float = flag(0.01, "--tune sparse: share of the body's conv weights that may differ from the prior "
                               "(the rest are reset to it after every step).")

    @property
    def overrides(self) -> dict:
        """The model's resized fields (`blocks`, `units`, `width`) as the model registry names them."""
        return {name: getattr(self, f) for f, name in MODEL_FIELDS.items() if getattr(self, f) is not None}


@dataclass
class TrainingPlan:
    method: str
    jobs: list[Job]
    model_map: np.ndarray  # uint8 [T, rows, cols]: index of the model serving each patch
    num_models: int
    radius: int = 0  # temporal radius of the models' input (multi-frame models)
    model: str | None = None  # the registry name of the models, where the method fixes it (not --model)
    joint_start: float = 0.0  # the share of the steps its joint start took (stdo, cafm)
    prior: str | None = None  # the sha256 of the prior its models started from; None: from scratch
    tune: str = "all"  # what training changed of the start (MethodOptions.tune, resolved)

    def params(self) -> int:
        return sum(p.numel() for job in self.jobs if job.deliverable for p in job.model.parameters())


def time_segments(num_frames: int, segments: int) -> np.ndarray:
    """Segment index of every frame: `segments` contiguous runs of near-equal length."""
    return (np.arange(num_frames) * segments // num_frames).astype(np.uint8)


def split_steps(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _Build:
    """What every method's builder shares: the RUN's frames and chunks, the options, the prior and the tune
    resolved, and the pieces a plan is made of (a new model from the prior, a patch sampler, a joint start)."""

    def __init__(self, method: str, frames: ClipFrames, chunks: np.ndarray, config: TrainConfig,
                 options: MethodOptions) -> None:
        self.method, self.frames, self.chunks = method, frames, chunks
        self.hr, self.lr, self.grid, self.scale = frames.hr, frames.lr, frames.grid, frames.scale
        self.entry = REGISTRY[method]
        self.steps, self.crop, self.augment, self.options = config.steps, config.crop_size, config.augment, options
        self.t, self.k = len(frames.lr), int(chunks.max()) + 1
        self.segments = options.segments or self.k
        if options.tune is not None and options.tune not in TUNES:
            raise StdoError(f"`tune` {options.tune!r} is unknown: use one of {', '.join(TUNES)}")
        on_device = self.entry.on_device
        if options.tune not in (None, "all") and not on_device:
            raise StdoError(f"`tune` {options.tune} restricts a per-video update of a prior; {method} trains whole: "
                            "drop `tune`")
        self.prior = initial_weights(options, frames.scale) if on_device else None
        self.tune = options.tune or ("channels" if self.prior is not None else "all")
        if self.tune == "sparse" and self.prior is None:
            raise StdoError("`tune` sparse keeps an update of a prior sparse, and these models start from scratch: "
                            "give `init` prior (or a stdo-general checkpoint), or another `tune`")
        if self.tune == "sparse" and not 0.0 <= options.sparse_share <= 1.0:
            raise StdoError(f"`sparse_share` {options.sparse_share} must be between 0 and 1 (the share of the conv "
                            "weights that may differ from the prior)")
        default = self.entry.joint_start
        share = (default or 0.0) if options.joint_start is None else options.joint_start
        if default is not None and not 0.0 <= share <= 1.0:
            raise StdoError(f"`joint_start` {share} must be between 0 and 1 (the share of the steps for the joint start)")
        self.joint_steps = int(round(share * self.steps)) if default is not None else 0

    @property
    def prior_id(self) -> str | None:
        return self.prior and self.prior[1]

    def check_segments(self) -> None:
        if not 1 <= self.segments <= self.t:
            raise StdoError(f"`segments` {self.segments} must be between 1 and the {self.t} frames of the RUN")

    def segment_map(self) -> np.ndarray:
        return np.broadcast_to(time_segments(self.t, self.segments)[:, None, None], self.chunks.shape)

    def new_model(self) -> nn.Module:
        model = create_model(self.options.model, scale=self.scale, **self.options.overrides)
        if self.prior is not None:
            start_from_prior(model, self.prior[0], self.options)
        restrict(model, self.tune)
        return model

    def projection(self, model: nn.Module) -> dict:
        """A job's `project` under --tune sparse (SparseProjection from the model's prior weights)."""
        return {"project": SparseProjection(model, self.options.sparse_share)} if self.tune == "sparse" else {}

    def group(self, patches: np.ndarray, radius: int = 0) -> PatchSampler:
        return PatchSampler(self.frames, patches, crop=self.crop, augment=self.augment, radius=radius)

    def chunk_sampler(self) -> ChunkSampler:
        """jstdo's: batches drawn chunk by chunk (stdo.train.sampling)."""
        return ChunkSampler([self.group(patches_of(self.chunks, i)) for i in range(self.k)],
                            weighting=self.options.sampling)

    def joint_start(self) -> list[Job]:
        """jstdo's model, sampler and schedule for its first `joint_steps` steps: it trains exactly as jstdo would."""
        if not self.joint_steps:
            return []
        model = self.new_model()
        return [Job("joint-start", model, self.joint_steps, self.chunk_sampler(), shared=True, deliverable=False,
                    schedule=(0, self.joint_steps, self.steps), **self.projection(model))]

    def from_start(self, start: list[Job]) -> dict:
        """What a job that continues the joint start needs: its weights and the rest of its schedule."""
        return {"init_from": "joint-start", "schedule": (self.joint_steps, self.steps, self.steps)} if start else {}


def _per_model(b: _Build) -> TrainingPlan:
    """stdo (one model per chunk) and nas (one per temporal segment: `per_segment`)."""
    if b.entry.per_segment:
        b.check_segments()
    labels, n = (b.segment_map(), b.segments) if b.entry.per_segment else (b.chunks, b.k)
    start = b.joint_start()
    models = [b.new_model() for _ in range(n)]
    jobs = [Job(f"model{i}", model, s, ChunkSampler([b.group(patches_of(labels, i))], ids=[i]),
                **b.from_start(start), **b.projection(model))
            for i, (model, s) in enumerate(zip(models, split_steps(b.steps - b.joint_steps, n)))]
    if not start and any(job.steps == 0 for job in jobs):
        raise StdoError(f"`steps` {b.steps} is fewer than the {n} models of {b.method}: give at least {n}")
    return TrainingPlan(b.method, start + jobs, np.ascontiguousarray(labels, np.uint8), n,
                        joint_start=b.joint_steps / b.steps, prior=b.prior_id, tune=b.tune)


def _joint(b: _Build) -> TrainingPlan:
    """awdnn (uniform over the clip) and jstdo (drawn chunk by chunk: `by_chunk`): one model."""
    sampler = b.chunk_sampler() if b.entry.by_chunk else ChunkSampler([b.group(patches_of(b.chunks))])
    model = b.new_model()
    return TrainingPlan(b.method, [Job("joint", model, b.steps, sampler, shared=True, **b.projection(model))],
                        np.zeros(b.chunks.shape, np.uint8), 1, prior=b.prior_id, tune=b.tune)


def _prior_alone(b: _Build) -> TrainingPlan:
    """prior: the carried prior as it is, untrained. The operating point where no update pays for its bytes: its
    bundle ships the prior coded against the client's own copy (a few hundred bytes) and no model map."""
    if b.prior is None:
        raise StdoError(f"`method` prior serves the carried prior, and `init` {b.options.init} starts from none: "
                        "give `init` prior")
    model = b.new_model()
    return TrainingPlan(b.method, [Job("joint", model, 0, ChunkSampler([b.group(patches_of(b.chunks))]), shared=True)],
                        np.zeros(b.chunks.shape, np.uint8), 1, prior=b.prior_id, tune=b.tune)


def _cafm(b: _Build) -> TrainingPlan:
    """A shared backbone with per-chunk modulation, chunks in time (CaFM's) or the RUN's."""
    if b.options.cafm_chunks not in CAFM_CHUNKS:
        raise StdoError(f"`cafm_chunks` {b.options.cafm_chunks!r} is unknown: use time or stdo")
    if b.options.cafm_chunks == "time":
        b.check_segments()
    labels, n = (b.segment_map(), b.segments) if b.options.cafm_chunks == "time" else (b.chunks, b.k)
    start = b.joint_start()  # then the modulation (and backbone) from jstdo's model
    backbone = b.new_model()
    model = CaFMWDSR(backbone.config, n)
    if b.prior is not None:
        model.backbone.load_state_dict(backbone.state_dict())
    restrict(model, b.tune)
    sampler = ChunkSampler([b.group(patches_of(labels, i)) for i in range(n)])
    job = Job("joint", model, b.steps - b.joint_steps, sampler, conditional=True, shared=True, **b.from_start(start),
              **b.projection(model))
    return TrainingPlan(b.method, start + [job], np.ascontiguousarray(labels, np.uint8), n,
                        joint_start=b.joint_steps / b.steps, prior=b.prior_id, tune=b.tune)


def _sequences(b: _Build) -> SequenceSampler:
    """brvsr's: sequences of `sequence` frames with DIS flow between neighbours."""
    if b.options.sequence < 2:
        raise StdoError(f"`sequence` {b.options.sequence} must be at least 2: brvsr learns from neighbours")
    from stdo.flow import neighbour_flows

    return SequenceSampler(b.frames, neighbour_flows(b.lr, on_disk=True), patches_of(b.chunks), b.options.sequence,
                           b.crop, b.augment)


def _pairs(b: _Build) -> PairSampler:
    """vinr's: frame pairs one and two frames apart."""
    return PairSampler(b.frames, patches_of(b.chunks), b.crop, b.augment)


def _video(b: _Build) -> TrainingPlan:
    """brvsr and vinr: one whole-clip model of the entry's `model`, fed by the entry's `sampler`."""
    model = create_model(b.entry.model, scale=b.scale, **b.options.overrides)
    return TrainingPlan(b.method, [Job("joint", model, b.steps, ChunkSampler([b.entry.sampler(b)]), shared=True)],
                        np.zeros(b.chunks.shape, np.uint8), 1, model=b.entry.model)


def _server(b: _Build) -> TrainingPlan:
    """mfwdsr (frames t-r .. t+r at once: `multi_frame`) and wdsr-large (the entry's `model`): one model over whole
    frames, trained whole."""
    radius = b.options.radius if b.entry.multi_frame else 0
    if not 0 <= radius <= (b.t - 1) // 2:
        raise StdoError(f"`radius` {radius} needs {2 * radius + 1} frames, the RUN has {b.t}: give at most "
                        f"{(b.t - 1) // 2}")
    name = b.entry.model or b.options.model
    model = create_model(name, scale=b.scale, **{**b.options.overrides, "frames": 2 * radius + 1})
    sampler = ChunkSampler([b.group(patches_of(b.chunks), radius)])
    return TrainingPlan(b.method, [Job("joint", model, b.steps, sampler, shared=True)],
                        np.zeros(b.chunks.shape, np.uint8), 1, radius, model=name)


@dataclass(frozen=True)
class Method:
    """A training method as the registry knows it: what builds its plan, and what it is, which the CLIs' choices,
    stdo-export's refusal, stdo-upscale's dispatch, stdo-deliver and stdo-fleet read."""

    name: str
    build: Callable[[_Build], TrainingPlan]
    on_device: bool  # its models ship in a phone bundle and start from the prior; else a server runs it
    video: bool = False  # a whole-clip model (stdo.videosr), not patch-wise WDSRs: stdo-upscale only
    joint_start: float | None = None  # the default share of a joint start, where the method has one
    upscale_backends: tuple[str, ...] = ("torch", "onnxruntime")  # what stdo-upscale may run it on
    trains: bool = True  # False: it serves its start as it is (the carried prior), whatever `steps` says
    model: str | None = None  # the registry model it always trains; None: the `model` option's
    per_segment: bool = False  # one model per temporal segment (nas), not per chunk (stdo)
    by_chunk: bool = True  # a joint model's batches drawn chunk by chunk (jstdo's rule); False: uniformly (awdnn)
    multi_frame: bool = False  # reads frames t-r .. t+r at once (`radius`)
    sampler: Callable[[_Build], object] | None = None  # a video model's batches
    upscale: str | None = None  # a video model's frames for stdo-upscale: 'module:function' (stdo.runtimes.resolve)
    evaluations: str | None = None  # what stdo-train adds to its report: 'module:function' (model, hr, lr, scale,
    # device) -> dict
    reads: str | None = None  # the frames each output frame reads, in words; None: t-radius .. t+radius


REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} is registered twice")
    REGISTRY[method.name] = method
    return method


for _method in (
    Method("stdo", _per_model, on_device=True, joint_start=0.75),
    Method("jstdo", _joint, on_device=True),
    Method("awdnn", _joint, on_device=True, by_chunk=False),
    Method("nas", _per_model, on_device=True, per_segment=True),
    Method("cafm", _cafm, on_device=True, joint_start=0.0),  # 0: it trains as CaFM does
    Method("prior", _prior_alone, on_device=True, trains=False),
    Method("mfwdsr", _server, on_device=False, multi_frame=True),
    Method("wdsr-large", _server, on_device=False, model="wdsr_large"),
    Method("brvsr", _video, on_device=False, video=True, model="brvsr", sampler=_sequences,
           upscale="stdo.upscale.pipeline:brvsr_upscale", reads="the whole clip, recurrent"),
    Method("vinr", _video, on_device=False, video=True, model="vinr", sampler=_pairs,
           upscale="stdo.upscale.pipeline:vinr_upscale", evaluations="stdo.videosr:vinr_evaluations",
           reads="frames t and t+1",
           upscale_backends=("torch",)),  # its decoder's output size is an argument of each call: no fixed graph
):
    register_method(_method)

METHODS = tuple(REGISTRY)
ON_DEVICE_METHODS = tuple(name for name, m in REGISTRY.items() if m.on_device)


def build_training_plan(method: str, frames: ClipFrames, chunks: np.ndarray, config: TrainConfig,
                        options: MethodOptions) -> TrainingPlan:
    """The jobs a method trains on a RUN's frames and chunks (config: the budget, crop and augmentation), and its
    model map."""
    if method not in REGISTRY:
        raise StdoError(f"unknown method {method!r}: use one of {', '.join(REGISTRY)}")
    return REGISTRY[method].build(_Build(method, frames, chunks, config, options))


def initial_weights(options: MethodOptions, scale: int) -> tuple[dict, str] | None:
    """(state dict, id) of the prior a new model starts from, or None (from scratch). `init prior` finds the
    shipped prior of the model at this scale; a model resized by overrides has none, and starts from scratch."""
    from stdo.priors import find_prior, load_prior

    if options.init == "scratch":
        return None
    if options.init == "prior":
        path = None if options.overrides else find_prior(options.model, scale)
        return load_prior(path) if path else None
    return load_prior(Path(options.init))


def start_from_prior(model: nn.Module, state: dict, options: MethodOptions) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise StdoError(f"the prior {options.init!r} is not a {options.model} at this scale: give a stdo-general "
                        f"checkpoint of `model` {options.model} and the RUN's scale, or `init` scratch") from None


def restrict(model: nn.Module, tune: str) -> None:
    """Freeze what `tune` keeps at its start: channels trains the body's biases and weight-norm gains only (the
    per-channel scale a folded, per-channel int8 weight carries outside its int8 values), biases the biases,
    sparse what channels trains plus the body's weight directions (kept sparse by stdo.train.sparse).
    The weights int8 exports keep in fp32 (the skip branch's 5x5 conv and the first conv: stdo.export.onnx.
    float_convs) stay as they start: a gain there rewrites all of its fp32 weights (14 KB of update for the skip of
    wdsr_a_mobile at x4); the skip's bias and the tail conv's stay too. So does the tail conv's gain: LiteRT codes
    that conv (int8 in, float out) with one power-of-two scale for all its channels, so a gain there rewrites its
    int8 weights (bikes x4, 400 steps: LiteRT int8 updates 8.6 KB with it, 6.3 KB without, the same PSNR)."""
    if tune == "all":
        return
    body = model.backbone.body if isinstance(model, CaFMWDSR) else model.body
    fixed_gains = {f"body.{i}.parametrizations.weight.original0" for i in (0, len(body) - 1)}  # the head, the tail
    tail_bias = f"body.{len(body) - 1}.bias"  # equal to the skip's in a prior trained whole: ONNX stores them once,
    # and both frozen they stay one tensor (trained apart they drift by float rounding and shift the layout)
    for name, p in model.named_parameters():
        gain = tune in ("channels", "sparse") and name.endswith("weight.original0") and "skip." not in name \
            and name.removeprefix("backbone.") not in fixed_gains
        direction = tune == "sparse" and moves_sparsely(name)
        bias = name.endswith("bias") and "skip." not in name and not name.endswith(tail_bias)
        p.requires_grad_(name.startswith("mods.") or bias or gain or direction)  # mods: CaFM's modulation


def start_from(model: nn.Module, start: nn.Module) -> None:
    """Load a joint start's weights into a job's model: all of a WDSR, or a CaFM model's shared backbone (its
    modulation starts as the identity, so it begins exactly as the joint model)."""
    (model.backbone if isinstance(model, CaFMWDSR) else model).load_state_dict(start.state_dict())


def save_job(training: TrainingPlan, job: Job, out_dir: Path) -> None:
    """Write a trained job's deliverable weights: model{i}.pt state dicts (cafm: folded, plus cafm.pt)."""
    if not job.deliverable:
        return
    if isinstance(job.model, CaFMWDSR):
        save_torch(out_dir / "cafm.pt", job.model.state_dict())
        for i in range(training.num_models):
            save_torch(out_dir / model_file(i), job.model.fold(i).state_dict())
    elif job.name == "joint":
        save_torch(out_dir / model_file(0), model_checkpoint(job.model))
    else:
        save_torch(out_dir / f"{job.name}.pt", job.model.state_dict())  # model{i}: model_file(i)


def load_models(out_dir: Path, num_models: int, device: str = "cpu") -> list[nn.Module]:
    """The models model0.pt .. model{n-1}.pt of a trained method (WDSRs, or a video model), in eval mode."""
    models = []
    for i in range(num_models):
        path = out_dir / model_file(i)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            models.append(load_model(state).to(device).eval())
        except FileNotFoundError:
            raise StdoError(f"{path} is missing: rerun stdo-train to finish training") from None
        except Exception as e:  # noqa: BLE001
            raise StdoError(f"{path} is not a checkpoint of this toolkit ({e.__class__.__name__}): "
                            "rerun stdo-train with `restart=True`") from None
    return models


def load_trained(folder: Path) -> tuple[list[nn.Module], np.ndarray, dict]:
    """A finished training in RUN/models/<method>/: its models (weight norm folded, eval mode), model map and
    report, for the stages that run it (export, upscale)."""
    from stdo.models import fold_weight_norm

    if not (folder / REPORT).is_file() or not (folder / MODEL_MAP).is_file():
        raise StdoError(f"{folder} holds no finished training: run stdo-train on {folder.parent.parent} "
                        f"with `method={folder.name!r}` first")
    try:
        report = read_json(folder / REPORT)
        with np.load(folder / MODEL_MAP) as z:
            model_map = np.ascontiguousarray(z["model_map"], np.uint8)
    except (OSError, ValueError, KeyError) as e:
        raise StdoError(f"{folder} is damaged ({e.__class__.__name__}): rerun stdo-train with `restart=True`") from None
    num_models = int(report.get("num_models", int(model_map.max()) + 1))
    return [fold_weight_norm(m).eval() for m in load_models(folder, num_models)], model_map, report
