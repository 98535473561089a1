"""One video's stages as plain functions: what a fleet task runs, callable (and tested) without Ray.

Each takes the video's row and its RUN folder and returns a record: seconds, node, the stage's
figures, or `error` (the stage's one-line message) when the input is bad. Anything else (a bug, a
killed worker) propagates, for the engine to retry or report. Every stage is safe to run again
after it was killed: cluster writes atomically, train resumes from its last checkpoint, export
swaps the bundle in whole.

A row with a budget is delivered whole in its first stage (stdo-deliver: every CRF and method tried, the kept
point's RUN and bundle swapped in at the end); its train and export stages then report the kept point's
training and bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from stdo.bundle import MANIFEST
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.deliver.pipeline import POINTS, DeliverOptions, deliver
from stdo.errors import StdoError
from stdo.export.pipeline import ExportOptions, export
from stdo.fleet.jobs import VideoJob
from stdo.rundir import BUNDLE, REPORT, method_dir, read_run_info
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train

STAGES = ("cluster", "train", "export")


def bundle_dir(run: Path) -> Path:
    return Path(run) / BUNDLE


def run_stage(stage: str, job: VideoJob, run: Path, cpus: int = 1, device: str = "cpu") -> dict:
    """Run one stage of one video with `cpus` torch threads; a record (see the module's docstring)."""
    torch.set_num_threads(max(1, cpus))
    t0 = time.perf_counter()
    try:
        figures = {"cluster": _cluster, "train": _train, "export": _export}[stage](job, Path(run), device)
    except StdoError as e:
        figures = {"error": e.plain()}  # a row's options are its columns
    return {"stage": stage, "seconds": round(time.perf_counter() - t0, 3), "node": socket.gethostname(), **figures}


def _cluster_options(job: VideoJob, run: Path) -> ClusterOptions:
    return ClusterOptions(source=job.video, run=run, scale=job.scale, grid=job.grid, chunks=job.chunks,
                          start=job.start, frames=job.frames, crop=job.crop, stream=job.stream(),
                          overwrite=True)  # the fleet owns runs/<name>: a row whose video changed starts that RUN over


def _cluster(job: VideoJob, run: Path, device: str) -> dict:
    if not job.video.exists():
        raise StdoError(f"{job.video} does not exist: fix the row's video path")
    if job.budget:
        return _deliver(job, run, device)
    summary = cluster(_cluster_options(job, run))
    return {"run_id": read_run_info(run)["run_id"], "frames": summary.frames,
            "lr_bytes": int(summary.stream.get("bytes", 0))}


def _deliver(job: VideoJob, run: Path, device: str) -> dict:
    """A budget row: stdo-deliver into runs/<name> (which the fleet owns: an earlier RUN of the row there is
    replaced, as the cluster stage replaces it)."""
    if run.exists() and not (run / POINTS).is_file():
        shutil.rmtree(run)
    quantize = tuple(dict.fromkeys(("int8", *job.quantize)))
    report = deliver(DeliverOptions(
        cluster=_cluster_options(job, run), out=run, budget=job.budget,
        crf=job.crfs, scale=(job.scale,), stream_alone=False, fill_budget=False,  # the job's CRFs, each with a model
        method=job.method, train=_train_options(job, run, device),
        export=ExportOptions(run=run, format=job.format, quantize=quantize, strict=True),
        overwrite=True))
    chosen, info = report["chosen"], read_run_info(run)
    return {"run_id": info["run_id"], "frames": info.frame_count,
            "lr_bytes": chosen["video"], "budget": report["budget"],
            "delivery": {k: chosen[k] for k in ("crf", "method", "total", "psnr", "bicubic_psnr")},
            "points": len(report["points"])}


def _kept_method(job: VideoJob, run: Path) -> str:
    """The method a row's RUN holds: its own, or for a budget row the one stdo-deliver kept."""
    if not job.budget:
        return job.method[0]
    return json.loads((run / POINTS).read_text())["chosen"]["method"]


def _train_options(job: VideoJob, run: Path, device: str) -> TrainOptions:
    config = TrainConfig(steps=job.steps, batch=job.batch, seed=job.seed, checkpoint_every=job.checkpoint_every,
                         device=device)
    return TrainOptions(run=run, method=job.method[0], config=config, method_options=MethodOptions(model=job.model))


def train_command(job: VideoJob, run: Path, device: str) -> list[str]:
    """The stdo-train command line of a row, run under torchrun when the row asks for several workers."""
    args = ["-m", "stdo.train.cli", str(run), "--method", job.method[0], "--model", job.model, "--steps", str(job.steps),
            "--batch", str(job.batch), "--seed", str(job.seed), "--checkpoint-every", str(job.checkpoint_every),
            "--device", device, "-q"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(job.workers), *args]


def _train(job: VideoJob, run: Path, device: str) -> dict:
    if job.budget:  # trained by the delivery: its kept point's report
        report = json.loads((method_dir(run, _kept_method(job, run)) / REPORT).read_text())
    elif job.workers == 1:
        report = train(_train_options(job, run, device))
    else:  # one node's processes (gloo on CPU, nccl on its GPUs); the RUN's checkpoints make a retry resume
        done = subprocess.run(train_command(job, run, device), capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(max(1, torch.get_num_threads() // job.workers))})
        if done.returncode != 0:
            lines = [s for s in done.stderr.splitlines() if s.startswith("Error: ")]
            if lines:
                raise StdoError(lines[0].removeprefix("Error: "))
            raise RuntimeError(f"torchrun exited {done.returncode}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        report = json.loads((method_dir(run, job.method[0]) / REPORT).read_text())
    return {"run_id": report["run_id"], "psnr": report["psnr_video"], "psnr_bicubic": report["bicubic"]["psnr_video"],
            "gain_db": report["psnr_video"] - report["bicubic"]["psnr_video"], "steps": report["steps"],
            "train_seconds": report["train_seconds"], "world_size": report["world_size"]}


def _export(job: VideoJob, run: Path, device: str) -> dict:
    if job.budget:  # exported by the delivery: the kept point's bundle and its export report
        artifacts = json.loads((bundle_dir(run) / "report.json").read_text())["artifacts"]
    else:
        artifacts = export(ExportOptions(run=run, method=job.method[0], format=job.format, quantize=job.quantize,
                                         out=bundle_dir(run), strict=True))["artifacts"]
    manifest = json.loads((bundle_dir(run) / MANIFEST).read_text())
    size = sum(p.stat().st_size for p in bundle_dir(run).rglob("*") if p.is_file())
    return {"run_id": manifest["run_id"], "bundle": str(bundle_dir(run)), "bundle_bytes": size,
            "artifacts": [{k: a.get(k) for k in ("format", "precision", "bytes", "psnr_vs_hr", "target")}
                          for a in artifacts]}
