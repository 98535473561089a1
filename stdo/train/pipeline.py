"""stdo-train as a library call: RUN -> RUN/models/<method>/ (weights, train state, report.json).

Layout of RUN/models/<method>/:
  model{i}.pt           state dict of the WDSR of model index i (torch.load(weights_only=True))
  cafm.pt               the shared CaFM model (cafm only)
  model_map.npz         `model_map` uint8 [T, rows, cols]: the model index serving each patch
  state/<job>.pt        everything to resume a job (model, optimizer, schedule, scaler, RNG)
  report.json           evaluation and cost (written last)
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import click
import torch

import stdo
from stdo.options import flag
from stdo.cluster.chunkmap import ChunkMap, load_chunkmap
from stdo.errors import StdoError, check_device
from stdo.fileio import save_npz, sha256_of, write_json
from stdo.locks import stage_lock, sweep_leftovers
from stdo.rundir import CLUSTERS, MODEL_MAP, REPORT, Run, model_file, open_run
from stdo.runtimes import resolve
from stdo.train import distributed as dist_utils
from stdo.train.data import ClipFrames
from stdo.train.evaluate import evaluate, evaluate_frames
from stdo.train.loop import ProgressFn, TrainConfig, config_signature, model_precision, resolve_amp, train_job
from stdo.train.methods import (METHODS, MODEL_FIELDS, REGISTRY, MethodOptions, TrainingPlan, build_training_plan,
                                load_models, save_job, start_from)
from stdo.videosr import video_frames

log = logging.getLogger(__name__)
REPORT_FORMAT = 1


@dataclass
class TrainOptions:
    """What stdo-train does, field by field; each field is the command's flag of the same meaning (its defaults
    live here, once). Errors name a field in backticks, as `crf`."""

    run: Path
    method: str = flag("stdo", "stdo: a model per chunk; jstdo: one joint model, data-aware sampling; awdnn: one "
                       "model; nas: a model per time segment; cafm: shared backbone + per-chunk modulation; prior: the "
                       "carried prior, untrained. Server-side: mfwdsr: one multi-frame WDSR (frames t-r..t+r); "
                       "wdsr-large: one WDSR of ~4.8M parameters; brvsr: bidirectional recurrent VSR with DIS flow; "
                       "vinr: continuous space-time SR (any scale, frames between).", type=click.Choice(METHODS))
    config: TrainConfig = field(default_factory=TrainConfig)
    method_options: MethodOptions = field(default_factory=MethodOptions)
    restart: bool = flag(False, "Discard saved training state and start over.")
    evaluate: bool = flag(True, "Evaluate the models on the whole clip after training.", negatable=True)


def _check(o: TrainOptions) -> None:
    if o.config.steps <= 0:
        raise StdoError(f"`steps` {o.config.steps} must be above 0: give the optimizer-step budget")
    if o.config.batch <= 0 or o.config.crop_size <= 0 or o.config.checkpoint_every <= 0:
        raise StdoError("`batch`, `crop` and `checkpoint_every` must be above 0")
    if not o.config.learning_rate > 0:
        raise StdoError(f"`learning_rate` {o.config.learning_rate} must be above 0")
    resolve_amp(o.config.amp, o.config.device)  # raises on an unknown mode
    check_device(o.config.device)


def train(o: TrainOptions, progress: ProgressFn = None, eval_progress: Callable[[int], None] | None = None) -> dict | None:
    """Train (or resume) a method on a RUN and evaluate it; returns the report (on rank 0; None elsewhere)."""
    _check(o)
    run = open_run(o.run, missing=f"run stdo-cluster SOURCE {o.run} first")  # a RUN at all, before any lock file
    side = min(run.grid.height, run.grid.width)
    if o.config.crop_size > side:  # the samplers take the largest square the frames hold
        log.warning("crop %d is larger than the %dx%d LR frames: crops of %d are trained", o.config.crop_size,
                    run.grid.width, run.grid.height, side)
    with stage_lock(run.path, f"RUN {run}", shared=True):
        return _train(o, open_run(run.path), progress, eval_progress)  # read again, now that no clustering can run


def _train(o: TrainOptions, run: Run, progress: ProgressFn, eval_progress) -> dict | None:
    if not (run.path / CLUSTERS).is_file():
        raise StdoError(f"{run} has no chunk map ({CLUSTERS}): rerun stdo-cluster, methods need its chunks")
    # the frames memory-mapped, not copied: crops are read from the page cache, which every rank of a torchrun
    # shares, so a process's memory does not grow with the clip (a copy per rank was ~3 GB for 15 s of 1080p at x4)
    cmap = load_chunkmap(run.path / CLUSTERS)
    if run.hr.shape[0] != cmap.chunks.shape[0] or run.lr.shape[1:3] != (run.grid.height, run.grid.width):
        raise StdoError(f"{run} is inconsistent (frames and chunk map disagree): rerun stdo-cluster with `overwrite=True`")

    world = dist_utils.init_from_env(o.config.device)
    config = TrainConfig(**{**asdict(o.config), "device": dist_utils.device_for_rank(o.config.device)})
    torch.manual_seed(config.seed)  # model initialization
    training = build_training_plan(o.method, ClipFrames(run.hr, run.lr, run.grid, run.scale), cmap.chunks, config,
                                   o.method_options)
    precision = model_precision(config, training.jobs[0].model).label  # what train_job runs the jobs under
    out = run.trained(o.method)
    with contextlib.ExitStack() as held:
        if world.rank == 0:  # one writer per method folder: a second stdo-train (or torchrun) on it is refused
            held.enter_context(stage_lock(out, f"{out}"))
            sweep_leftovers(out)
        return _train_jobs(_Training(o, run, cmap, training, world, config, precision), progress, eval_progress)


@dataclass
class _Training:
    """A method's training on a RUN as this process runs it: the options, the RUN and its chunk map, the plan of
    jobs, the process group, the options on this rank's device, and the precision it trains under."""

    o: TrainOptions
    run: Run
    cmap: ChunkMap
    training: TrainingPlan
    world: dist_utils.World
    config: TrainConfig
    precision: str


def _train_jobs(t: _Training, progress: ProgressFn, eval_progress) -> dict | None:
    o, run, training, world, config = t.o, t.run, t.training, t.world, t.config
    out = run.trained(o.method)
    state_dir = out / "state"
    if o.restart and world.rank == 0 and state_dir.exists():
        shutil.rmtree(state_dir)
    dist_utils.barrier()
    out.mkdir(parents=True, exist_ok=True)

    info = run.info
    signature_base = {
        "method": o.method, "run": {"created": info.get("created"), "source": info["source"].get("sha256"),
                                    "run_id": info.get("run_id")},
        "model": o.method_options.model, "overrides": o.method_options.overrides,
        "train": config_signature(o.config),
        "method_options": {**{k: v for k, v in asdict(o.method_options).items() if k not in MODEL_FIELDS},
                           "overrides": o.method_options.overrides},  # as states saved before the fields were flags
        "prior": training.prior,
    }
    # where it runs may change between a stop and a resume (a RUN moved to another machine): warned, not refused
    runtime = {"device": o.config.device, "amp": t.precision, "compile": o.config.compile}
    t0 = time.perf_counter()
    results = []
    my_jobs = set(dist_utils.mine(list(range(len(training.jobs)))))
    trained_jobs = {}
    for index, job in enumerate(training.jobs):
        if not job.shared and index not in my_jobs:
            continue
        if job.init_from is not None:  # a chunk expert starts from the joint model (its state, if any, overrides)
            start_from(job.model, trained_jobs[job.init_from].model)
        signature = {**signature_base, "job": job.name, "world": world.size if job.shared else 1}
        result = train_job(job, config, state_dir / f"{job.name}.pt", signature, progress, index, runtime)
        trained_jobs[job.name] = job
        if world.rank == 0 or not job.shared:
            save_job(training, job, out)
        results.append(asdict(result))
    # every rank's results; a shared job reports from each rank, so keep one per job name
    jobs = {r["name"]: r for rank_results in dist_utils.gather_objects(results) for r in rank_results}
    report = None
    if world.rank == 0:
        report = _report(t, jobs, eval_progress, t0)
    dist_utils.barrier()  # all ranks leave together: none tears down the process group while rank 0 evaluates
    return report


def _report(t: _Training, jobs: dict, eval_progress, t0: float) -> dict:
    """Write model_map.npz and report.json (cost, and the evaluation unless disabled); return the report."""
    o, run, cmap, training, config = t.o, t.run, t.cmap, t.training, t.config
    out, hr, lr, grid, scale = run.trained(o.method), run.hr, run.lr, run.grid, run.scale
    report = {
        "format": REPORT_FORMAT, "tool": f"stdo {stdo.__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "method": o.method, "scale": scale, "frames": int(len(lr)), "grid": [grid.cols, grid.rows],
        "margin": grid.margin, "num_models": training.num_models, "radius": training.radius,
        "model": {"name": training.model or o.method_options.model, **training.jobs[0].model.config.to_dict()},
        "params": training.params(), "bytes_fp32": 4 * training.params(),
        "steps": sum(r["steps"] for r in jobs.values()),
        "jobs": [jobs[name] for name in sorted(jobs)],
        "train_seconds": sum(r["seconds"] for r in jobs.values()),
        "wall_seconds": None, "device": config.device, "world_size": t.world.size,
        "amp": t.precision, "config": asdict(o.config),
        "method_options": {**asdict(o.method_options), "joint_start": training.joint_start, "tune": training.tune},
        "prior": training.prior,  # the sha256 of the prior the models started from (None: from scratch)
    }
    save_npz(out / MODEL_MAP, model_map=training.model_map)
    report["run_id"] = run.info.get("run_id")  # the clustering these models were trained on
    report["model_sha256"] = {model_file(i): sha256_of(out / model_file(i)) for i in range(training.num_models)}
    if o.evaluate:
        models = load_models(out, training.num_models, config.device)
        if REGISTRY[o.method].video:
            frames = video_frames(models[0], lr, config.device)
            report.update(evaluate_frames(run, cmap, frames, eval_progress))
            if REGISTRY[o.method].evaluations:  # what the model does beyond the RUN's scale and frame rate
                report.update(resolve(REGISTRY[o.method].evaluations)(models[0], hr, lr, scale, config.device))
        else:
            report.update(evaluate(run, cmap, training.model_map, models,
                                   device=config.device, progress=eval_progress, radius=training.radius))
    report["wall_seconds"] = time.perf_counter() - t0
    write_json(out / REPORT, report)
    return report
