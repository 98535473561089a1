"""stdo-upscale as a library call: a trained method of a RUN run over the whole clip on a server.

For server-side methods (one model: mfwdsr, wdsr-large; also awdnn and jstdo) every frame runs
whole through the model, a multi-frame model reading frames t-r .. t+r; the video models run over
the clip (brvsr: its two recurrences with DIS flow, the flow's time counted; vinr: frame pairs);
methods with several models (stdo, nas, cafm) run patch-wise by their model map, as training
evaluated them. Backends: torch (the trained weights) or onnxruntime (the model exported to ONNX
here, brvsr as its two step graphs; tests check it against torch; vinr: torch only). Reports frames per second of inference, and RGB PSNR, Y-PSNR and SSIM against the RUN's
HR frames beside bicubic; optionally writes the SR video (H.264, the player's output settings).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch

from stdo.errors import StdoError
from stdo.infer import Runner, iter_upscaled, lr_batches
from stdo.scores import QualityScores
from stdo.options import flag, same_as
from stdo.play.pipeline import PlayOptions, check_output_stream, output_stream
from stdo.rundir import open_run
from stdo.stream import StreamWriter
from stdo.runtimes import BACKENDS, FORMATS, resolve
from stdo.train.methods import METHODS, REGISTRY, load_trained
from stdo.resample import as_nchw, upscale_bicubic
from stdo.videosr import brvsr_frames, vinr_frames

UPSCALE_BACKENDS = ("torch", "onnxruntime")


@dataclass
class UpscaleOptions:
    """What stdo-upscale does, field by field; each field is the command's flag of the same meaning (its defaults
    live here, once). Errors name a field in backticks, as `crf`."""

    run: Path
    method: str = flag("mfwdsr", "The trained method of the RUN to run (RUN/models/METHOD).",
                       type=click.Choice(METHODS))
    backend: str = flag("torch", "torch runs the trained weights; onnxruntime runs them exported to ONNX here (brvsr: "
                        "its two step graphs; vinr: torch only).", type=click.Choice(UPSCALE_BACKENDS))
    out: Path | None = flag(None, "Write the SR video (.mp4, H.264 yuv420p).", type=click.Path(path_type=Path))
    overwrite: bool = flag(False, "Replace --out if it exists.")
    out_crf: int = same_as(PlayOptions, "out_crf")
    out_preset: str = same_as(PlayOptions, "out_preset")
    frames_per_batch: int = same_as(PlayOptions, "frames_per_batch")
    threads: int | None = flag(None, "onnxruntime threads.", type=click.IntRange(min=1))


def _check(o: UpscaleOptions) -> None:
    if o.method not in METHODS:
        raise StdoError(f"unknown method {o.method!r}: use one of {', '.join(METHODS)}")
    if o.backend not in UPSCALE_BACKENDS:
        raise StdoError(f"unknown backend {o.backend!r}: use one of {', '.join(UPSCALE_BACKENDS)}")
    if o.backend not in REGISTRY[o.method].upscale_backends:
        raise StdoError(f"{o.method} runs on {', '.join(REGISTRY[o.method].upscale_backends)} only: use `backend` "
                        f"{REGISTRY[o.method].upscale_backends[0]}")
    if o.frames_per_batch <= 0:
        raise StdoError(f"`frames_per_batch` {o.frames_per_batch} must be above 0")
    if o.out is not None:
        if Path(o.out).suffix.lower() != ".mp4":
            raise StdoError(f"`out` {o.out}: give an .mp4 file")
        if Path(o.out).exists() and not o.overwrite:
            raise StdoError(f"`out` {o.out} exists: give another path, or `overwrite` to replace it")
        check_output_stream(o.out_crf, o.out_preset)


def _runners(models: list[torch.nn.Module], backend: str, threads: int | None, work: Path) -> list[Runner]:
    """The models as runners: torch as trained, or ONNX files written here by the format table's converter."""
    if backend == "torch":
        return [lambda x, m=m: m(x) for m in models]
    onnx = FORMATS[BACKENDS["onnxruntime"]]
    paths = [work / f"model{i}.onnx" for i in range(len(models))]
    for model, path in zip(models, paths):
        onnx.convert(model, path, ((32, 32),), "fp32", None)
    return [onnx.open(path, threads) for path in paths]


@dataclass(frozen=True)
class Execution:
    """How a method's models run: the backend, frames per batch, runtime threads, and a folder for the models
    exported for it (onnxruntime)."""

    backend: str
    batch: int
    threads: int | None
    work: Path


def sr_frames(method: str, models: list[torch.nn.Module], model_map: np.ndarray, lr: np.ndarray, grid, scale: int,
              execution: Execution):
    """(first index, SR frames float [B, 3, H, W] on 0..255) of a trained method over uint8 LR frames: a video
    model over the whole clip, one model over whole frames (reading t-r .. t+r), several patch-wise by the model
    map."""
    backend, batch, threads, work = execution.backend, execution.batch, execution.threads, execution.work
    if REGISTRY[method].video:
        return resolve(REGISTRY[method].upscale)(models[0], lr, backend, batch, threads, work)
    radius = models[0].config.frames // 2
    if len(models) == 1:
        runner = _runners(models, backend, threads, work)[0]
        return ((i, runner(x).clamp_(0, 1).mul_(255).round_()) for i, x in lr_batches(lr, batch, radius=radius))
    return iter_upscaled(lr_batches(lr, batch), grid, scale, model_map, _runners(models, backend, threads, work))


def brvsr_upscale(model: torch.nn.Module, lr: np.ndarray, backend: str, batch: int, threads: int | None, work: Path):
    """brvsr's frames (its method entry's `upscale`): the torch model, or its two recurrence steps in ONNX Runtime."""
    steps = None
    if backend == "onnxruntime":
        from stdo.runtimes.onnx import OnnxStep

        paths = FORMATS[BACKENDS[backend]].convert_video_model(model, work)
        steps = (OnnxStep(paths["backward"], "backward", threads), OnnxStep(paths["forward"], "forward", threads))
    return brvsr_frames(model, lr, steps=steps)


def vinr_upscale(model: torch.nn.Module, lr: np.ndarray, backend: str, batch: int, threads: int | None, work: Path):
    """vinr's frames (its method entry's `upscale`): torch only, `batch` frames at a time."""
    return vinr_frames(model, lr, batch=batch)


@torch.no_grad()
def upscale(o: UpscaleOptions, progress: Callable[[int], None] | None = None) -> dict:
    """Run a trained method over the RUN's clip; returns the report (and writes o.out if given)."""
    _check(o)
    run = open_run(o.run)
    models, model_map, trained = load_trained(run.trained(o.method))
    video = REGISTRY[o.method].video  # brvsr / vinr: whole-clip models
    radius = 0 if video else models[0].config.frames // 2
    hr, lr, grid, scale = run.hr, run.lr, run.grid, run.scale
    fps_clip = run.info.fps
    scores = QualityScores(scale)
    seconds = 0.0
    writer = StreamWriter(Path(o.out), fps_clip, output_stream(o.out_crf, o.out_preset)) if o.out else None
    with tempfile.TemporaryDirectory(prefix="stdo-upscale-") as tmp, writer or contextlib.nullcontext():
        results = sr_frames(o.method, models, model_map, lr, grid, scale,
                            Execution(o.backend, o.frames_per_batch, o.threads, Path(tmp)))
        t0 = time.perf_counter()
        for i, sr in results:
            seconds += time.perf_counter() - t0
            ref = as_nchw(hr[i : i + len(sr)]).float()
            bicubic = upscale_bicubic(lr[i : i + len(sr)], scale)
            scores.add("model", sr, ref)
            scores.add("bicubic", bicubic, ref)
            if writer is not None:
                for frame in sr.to(torch.uint8).permute(0, 2, 3, 1).numpy():
                    writer.write(frame)
            if progress:
                progress(len(sr))
            t0 = time.perf_counter()
    return {"method": o.method, "backend": o.backend, "frames": int(len(lr)), "scale": scale, "radius": radius,
            "video_model": o.method if video else None,  # brvsr, vinr or None
            "reads": REGISTRY[o.method].reads or f"frames t-{radius}..t+{radius}",
            "models": len(models), "fps": len(lr) / max(seconds, 1e-9), "seconds": seconds,
            "psnr": scores.model_and_bicubic(),
            "train_psnr_video": trained.get("psnr_video"), "out": str(o.out) if o.out else None}
