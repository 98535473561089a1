"""The training loop: Adam, L1, warmup + cosine schedule, a budget in optimizer steps, the best state kept.

Mixed precision with torch.amp; checkpoints every N steps written atomically, holding
everything needed to continue exactly (model, optimizer, schedule, grad scaler, the
sampler's RNG and state), so rerunning the same command resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch
from torch import nn

from stdo.errors import StdoError
from stdo.options import flag
from stdo.fileio import save_torch
from stdo.train import distributed as dist_utils
from stdo.train.sampling import ChunkSampler

log = logging.getLogger(__name__)

AMP_MODES = ("auto", "off", "bf16", "fp16")
OPT_LEVELS = {"O0": "off", "O1": "auto", "O2": "auto"}  # apex-era names; apex.amp became torch.amp


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype | None  # autocast dtype, None = fp32
    scaler: bool  # GradScaler (fp16 only)
    label: str


def resolve_amp(mode: str, device: str, multi_frame: bool = False) -> Precision:
    """--amp auto|off|bf16|fp16 -> what autocast runs (auto: fp16+GradScaler on CUDA, bf16 on CPUs that support it,
    except for a multi-frame model: fp32. On the tests' 6-frame clip, mfwdsr (radius 1) gained +1.88 dB over bicubic
    in 480 fp32 steps and +0.14 dB under bf16 autocast; single-frame WDSRs gained the same either way)."""
    mode = OPT_LEVELS.get(mode, mode)
    if mode not in AMP_MODES:
        raise StdoError(f"`amp` {mode!r} is unknown: use one of {', '.join(AMP_MODES)} (or `opt_level` O0/O1/O2)")
    cuda = device.startswith("cuda")
    if mode == "auto":
        mode = "fp16" if cuda else "bf16" if cpu_supports_bf16() and not multi_frame else "off"
    if mode == "off":
        return Precision(None, False, "fp32")
    if mode == "bf16":
        return Precision(torch.bfloat16, False, "bf16")
    if not cuda:
        log.warning("fp16 autocast on CPU is slow (measured ~18x slower than fp32 here); bf16 is the CPU choice")
    return Precision(torch.float16, True, "fp16+GradScaler")  # fp16 gradients underflow without loss scaling


def model_precision(cfg: "TrainConfig", model: nn.Module) -> Precision:
    """What autocast runs when `model` trains under `cfg` (its amp mode and device; a model reading several LR
    frames at once stays in fp32 under auto)."""
    frames = getattr(getattr(model, "config", None), "frames", 1)
    return resolve_amp(cfg.amp, cfg.device, multi_frame=frames > 1)


@dataclass
class Job:
    """One model's training: its model, budget and where its batches come from."""

    name: str
    model: nn.Module
    steps: int
    sampler: ChunkSampler
    conditional: bool = False  # the model takes chunk ids (CaFM)
    shared: bool = False  # one model for all ranks (DDP all-reduce) rather than one job per rank
    init_from: str | None = None  # start from the trained weights of this (earlier) job
    deliverable: bool = True  # its weights are one of the method's models (not a start for others)
    # (first, last, total): the job's steps run the learning-rate schedule of a `total`-step run from step `first`
    # to `last` (a joint start runs the head of one schedule, each chunk model from it runs the tail); None: its own
    schedule: tuple[int, int, int] | None = None
    project: Callable[[nn.Module], None] | None = None  # applied to the model after every optimizer step (the
    # constraint of a sparse update: stdo.train.sparse)
    evaluate: Callable[[int, nn.Module], float] | None = None  # (step, model) -> the PSNR that decides the kept
    # state, in place of the job's own evaluation crops (a prior: held-out validation content)


@dataclass
class JobResult:
    name: str
    steps: int
    seconds: float
    final_loss: float
    history: list[tuple[int, float]] = field(default_factory=list)
    kept_step: int = 0  # the step whose weights were kept (the best evaluation)
    evaluations: list[tuple[int, float]] = field(default_factory=list)  # (step, PSNR on the job's evaluation crops)


ProgressFn = Callable[[str, int, int, float, float], None] | None  # (job, step, steps, loss, psnr)


def lr_factor(step: int, steps: int, warmup_share: float = 0.1, final: float = 0.01) -> float:
    """Linear warmup over the first 10% of steps, then cosine down to 1% of the learning rate.

    The warmup matters here: a new model starts as exact bicubic upsampling, and Adam's
    first full-size steps (about lr per weight, whatever the gradient) would push it off
    that start faster than the body learns anything.
    """
    warmup = max(1, int(steps * warmup_share))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


WSD_WARMUP = 1000  # steps (a tenth of the steps for runs shorter than 10,000)
WSD_DECAY_SHARE = 0.2  # the last 20% of the steps


def wsd_decay_start(steps: int) -> int:
    return steps - int(steps * WSD_DECAY_SHARE)


def wsd_factor(step: int, steps: int, final: float = 0.01) -> float:
    """Warmup, stable, decay: linear warmup, the full learning rate, then a cosine down to 1% over the last 20%.

    Unlike the cosine, every step between the warmup and the decay has the full learning rate whatever the
    total, so a run can be extended: the state saved where the decay starts resumes under a larger `steps` (a
    long training, such as a prior's, runs over several sittings and is annealed at each end).
    """
    warmup = max(1, min(WSD_WARMUP, steps // 10))
    if step < warmup:
        return (step + 1) / warmup
    decay = wsd_decay_start(steps)
    if step < decay:
        return 1.0
    progress = min(1.0, (step - decay) / max(1, steps - decay))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))


SCHEDULES = {"cosine": lr_factor, "wsd": wsd_factor}  # TrainConfig.schedule -> the learning rate's shape


@dataclass
class TrainConfig:
    steps: int = flag(2000, "Optimizer-step budget of the whole method (split evenly over per-chunk models).")
    batch: int = flag(16, "Crops per optimizer step.")
    crop_size: int = flag(32, "LR crop side in pixels.")
    learning_rate: float = flag(1e-3, "Adam learning rate (10% warmup, then the schedule down to 1%).")
    schedule: str = flag("cosine", "Learning-rate shape: cosine, or wsd (warmup, stable, decay: a rerun with more "
                         "--steps extends it).", type=click.Choice(sorted(SCHEDULES)))
    augment: bool = flag(True, "Random flips and rotations of the crops.", negatable=True)
    amp: str = flag("auto", "Mixed precision: auto = fp16+GradScaler on CUDA, bf16 on CPUs with bf16 units, else "
                    "fp32.", type=click.Choice(AMP_MODES))
    checkpoint_every: int = flag(100, "Steps between checkpoints.")
    seed: int = flag(0, "Seed of sampling and initialization.")
    device: str = flag("cpu", "Torch device (cuda = this rank's GPU under torchrun).")
    compile: bool = flag(False, "torch.compile the model: about half a minute to start, faster steps on long runs.")
    keep_last: bool = flag(False, "Keep the last state of each model, not the best seen by the periodic evaluation "
                           "(which never keeps a model below its start).")
    eval_points: int = 10  # evaluations over the run (plus the start and the end)


RUNTIME_FIELDS = ("device", "amp", "compile")  # may differ on resume (warned); every other option must match
_STORED_NAMES = {"crop_size": "crop", "learning_rate": "lr"}  # the names checkpoints saved before these fields had
# their flags' names: a resume compares signatures, so the stored names stay


def config_signature(cfg: TrainConfig, leave_out: tuple[str, ...] = ()) -> dict:
    """The training options a checkpoint must have been made with to resume (not where it runs: RUNTIME_FIELDS)."""
    signature = {_STORED_NAMES.get(k, k): v for k, v in asdict(cfg).items()
                 if k not in RUNTIME_FIELDS + leave_out + ("keep_last",)}
    return {**signature, "keep_best": not cfg.keep_last}


def scheduled_lr_factor(step: int, steps: int, schedule: tuple[int, int, int] | None, shape: str = "cosine") -> float:
    """The schedule's factor at a job's step, its `steps` spread over its share of a longer schedule (Job.schedule)."""
    first, last, total = schedule or (0, steps, steps)
    return SCHEDULES[shape](first + (last - first) * step // max(1, steps), total)


def _masked_squared_error(sr: torch.Tensor, hr: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(sum of squared errors, values counted) of SR clamped to [0, 1] against HR over the crops the mask marks."""
    return float(((sr.detach().float().clamp(0, 1) - hr) ** 2 * mask).sum()), 3 * float(mask.sum())


def _psnr(squared_error: float, values: float) -> float:
    return 10 * math.log10(1 / max(squared_error / max(values, 1.0), 1e-12))


def _psnr_of(sr: torch.Tensor, hr: torch.Tensor, mask: torch.Tensor) -> float:
    return _psnr(*_masked_squared_error(sr, hr, mask))


def _to_device(x, device: torch.device):
    """A model argument onto the device: image batches channels-last (~1.2x faster convs), non-tensors as they are."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


EVAL_SALT = 7919  # the evaluation crops' RNG stream, apart from the training batches'


def _slice(x, a: int, b: int):
    return x[a:b] if isinstance(x, torch.Tensor) and x.dim() else x


class Evaluator:
    """A fixed set of crops of the job's own training patches, drawn once (the same on every rank and after a
    resume), and the PSNR of the model on them: what decides which state is kept.

    The released STDO code keeps its best epoch; here the start is a candidate too, and a new model starts
    as bicubic, so a kept model is never below bicubic on these crops whatever happens to the loss."""

    def __init__(self, job: Job, cfg: TrainConfig, job_index: int, device: torch.device) -> None:
        rng = np.random.default_rng([cfg.seed, job_index, EVAL_SALT])
        self.count = max(64, 4 * cfg.batch)
        inputs, self.hr, self.mask, self.ids = job.sampler.draw(self.count, rng, evaluation=True)
        self.inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        self.job, self.batch, self.device = job, cfg.batch, device

    @torch.no_grad()
    def psnr(self, model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        se = pixels = 0.0
        for a in range(0, self.count, self.batch):
            inputs = tuple(_to_device(_slice(x, a, a + self.batch), self.device) for x in self.inputs)
            hr, mask = self.hr[a : a + self.batch].to(self.device), self.mask[a : a + self.batch].to(self.device)
            sr = model(*inputs, self.ids[a : a + self.batch].to(self.device)) if self.job.conditional else model(*inputs)
            error, values = _masked_squared_error(sr, hr, mask)
            se, pixels = se + error, pixels + values
        model.train(was_training)
        return _psnr(se, pixels)


def _copy_state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class Checkpoint:
    """Everything a job needs to resume exactly where it stopped (RUN/models/<method>/state/<job>.pt, written
    atomically every --checkpoint-every steps; torch.load(weights_only=True) reads it as a plain dict)."""

    signature: dict  # what was trained (options, data): a resume with other options is refused
    step: int
    model: dict
    optimizer: dict
    scheduler: dict
    scaler: dict  # empty when saved without loss scaling (CPU, bf16)
    rng: list  # each rank's numpy bit-generator state (one for a per-rank job)
    sampler: dict
    elapsed: float  # training seconds so far
    history: list  # (step, loss)
    config: dict
    best: dict | None = None  # {"step", "psnr", "model"}: the best evaluated state so far
    evaluations: list = field(default_factory=list)  # (step, PSNR on the job's evaluation crops)
    runtime: dict | None = None  # device and amp, which may differ on resume (warned)

    def save(self, path: Path) -> None:
        save_torch(path, {f.name: getattr(self, f.name) for f in fields(self)})  # not asdict: it deep-copies

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
            raise StdoError(f"{path} is unreadable ({e.__class__.__name__}): delete it or pass `restart`") from None


def _extendable(state: Checkpoint, stable_path: Path, steps: int) -> Checkpoint:
    """A wsd run's state to resume under another total of `steps`: the saved state if it is still before both
    decays, else the state saved where its decay started (the anneal is run again at the new end)."""
    decay = wsd_decay_start(steps)
    if state.step > min(decay, wsd_decay_start(state.config.get("steps", steps))):
        if not stable_path.exists():
            raise StdoError(f"the run saved at step {state.step} is past where its learning rate decays and keeps no "
                            f"state from before: rerun with its `steps` {state.config.get('steps')}, or `restart`")
        state = Checkpoint.load(stable_path)
    if state.step > decay:
        raise StdoError(f"the run's stable phase ended at step {state.step}, past where {steps} steps start to decay "
                        f"(step {decay}): give `steps` of at least {math.ceil(state.step / (1 - WSD_DECAY_SHARE))}")
    log.info("extending a wsd run from step %d to %d steps", state.step, steps)
    evaluations = [e for e in state.evaluations if e[0] <= state.step]
    best = state.best if state.best is not None and state.best["step"] <= state.step else None
    return Checkpoint(**{**{f.name: getattr(state, f.name) for f in fields(state)}, "evaluations": evaluations,
                         "best": best})


def train_job(job: Job, cfg: TrainConfig, state_path: Path, signature: dict, progress: ProgressFn = None,
              job_index: int = 0, runtime: dict | None = None) -> JobResult:
    """Train one job to cfg-defined steps, resuming from state_path when it holds the same signature (what was
    trained); `runtime` (device, amp) may differ from the saved one's: resumed with a warning."""
    device = torch.device(cfg.device)
    precision = model_precision(cfg, job.model)
    world = dist_utils.world()
    model = job.model.to(device, memory_format=torch.channels_last)  # ~1.2x faster convs on CPU and GPU
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    if cfg.schedule not in SCHEDULES:
        raise StdoError(f"`schedule` {cfg.schedule!r} is unknown: use one of {', '.join(SCHEDULES)}")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(scheduled_lr_factor, steps=job.steps, schedule=job.schedule, shape=cfg.schedule))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
    rng = np.random.default_rng([cfg.seed, job_index, world.rank])
    step, elapsed, history = 0, 0.0, []
    evaluator = Evaluator(job, cfg, job_index, device) if not cfg.keep_last and job.evaluate is None else None  # drawn
    # before any resume
    eval_every = max(1, job.steps // max(1, cfg.eval_points))
    best: dict | None = None  # {"step", "psnr", "model"}
    evaluations: list[tuple[int, float]] = []

    stable_path = state_path.with_name(state_path.name + ".stable")  # the state where a wsd decay starts
    if state_path.exists():
        state = Checkpoint.load(state_path)
        if cfg.schedule == "wsd" and state.config.get("steps") != job.steps:
            state = _extendable(state, stable_path, job.steps)
        if state.signature != signature:
            raise StdoError(
                f"{state_path} was saved by a run with other options: rerun with the same options to resume, "
                "or pass `restart` to start over"
            )
        if runtime is not None and state.runtime not in (None, runtime):
            log.warning("%s: resuming a training saved with %s, now on %s: the steps left run there", job.name,
                        state.runtime, runtime)
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        if state.scaler:
            scaler.load_state_dict(state.scaler)
        rng.bit_generator.state = state.rng[world.rank if job.shared else 0]
        job.sampler.load_state_dict(state.sampler)
        step, elapsed, history = state.step, state.elapsed, [tuple(h) for h in state.history]
        best = state.best
        evaluations = [tuple(e) for e in state.evaluations]
        log.info("%s: resuming at step %d of %d", job.name, step, job.steps)

    def consider(at_step: int) -> None:
        """Evaluate the model; keep its state if it is the best so far (ties keep the earlier)."""
        nonlocal best
        if (evaluator is None and job.evaluate is None) or (evaluations and evaluations[-1][0] == at_step):
            return
        score = job.evaluate(at_step, model) if job.evaluate is not None else evaluator.psnr(model)
        evaluations.append((at_step, score))
        if best is None or score > best["psnr"]:
            best = {"step": at_step, "psnr": score, "model": _copy_state(model)}

    if step == 0:
        consider(0)  # the start: bicubic for a new model, or the job it starts from

    trained = dist_utils.wrap_shared(model) if job.shared else model
    if cfg.compile:
        trained = torch.compile(trained)  # `model` stays the plain module: checkpoints keep their keys
    model.train()
    start = time.perf_counter() - elapsed
    loss_value = history[-1][1] if history else float("nan")
    last_saved = step
    while step < job.steps:
        inputs, hr_batch, mask, ids = job.sampler.draw(cfg.batch, rng)
        inputs = tuple(_to_device(x, device) for x in (inputs if isinstance(inputs, tuple) else (inputs,)))
        hr_batch, mask, ids = (x.to(device, non_blocking=True) for x in (hr_batch, mask, ids))
        with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
            sr = trained(*inputs, ids) if job.conditional else trained(*inputs)
        # L1 over the crop only (mask), not the context around it
        per_sample = ((sr.float() - hr_batch).abs() * mask).flatten(1).sum(1) / (3 * mask.flatten(1).sum(1))
        loss = per_sample.mean()
        if not torch.isfinite(loss):
            raise StdoError(
                f"{job.name}: the loss became {loss.item()} at step {step + 1}; training stopped and the checkpoint "
                f"of step {last_saved} is kept: lower `learning_rate` or use `amp` off"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if job.project is not None:
            job.project(model)
        totals = job.sampler.totals(per_sample.detach().cpu(), ids.cpu())
        job.sampler.observe(dist_utils.all_reduce_sum(totals) if job.shared else totals)
        step += 1
        loss_value = loss.item()
        if step % max(1, cfg.checkpoint_every // 10) == 0 or step == job.steps:
            history.append((step, loss_value))
        if progress:
            progress(job.name, step, job.steps, loss_value, _psnr_of(sr, hr_batch, mask))
        if step % eval_every == 0 or step == job.steps:
            consider(step)
        stable_end = cfg.schedule == "wsd" and step == wsd_decay_start(job.steps)
        if step % cfg.checkpoint_every == 0 or step == job.steps or stable_end:
            rng_states = dist_utils.gather_objects(rng.bit_generator.state) if job.shared else [rng.bit_generator.state]
            if world.rank == 0 or not job.shared:
                checkpoint = Checkpoint(signature=signature, step=step, model=model.state_dict(),
                                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                        scaler=scaler.state_dict(), rng=rng_states, sampler=job.sampler.state_dict(),
                                        elapsed=time.perf_counter() - start, history=history,
                                        config={**asdict(cfg), "steps": job.steps}, best=best,
                                        evaluations=evaluations, runtime=runtime)
                checkpoint.save(state_path)
                if stable_end:
                    checkpoint.save(stable_path)
            last_saved = step
    kept = step
    if best is not None and best["step"] != step:
        model.load_state_dict(best["model"])
        kept = best["step"]
        log.info("%s: keeping step %d (%.3f dB on its evaluation crops; the last step %d: %.3f dB)", job.name, kept,
                 best["psnr"], step, evaluations[-1][1] if evaluations else float("nan"))
    model.eval()
    return JobResult(job.name, step, time.perf_counter() - start, loss_value, history, kept, evaluations)

