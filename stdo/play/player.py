"""The player: a bundle's LR video, inference plan and models -> SR frames, with where the time went.

For each batch of frames it executes the bundle's plan (stdo.plan): the runs of one model and
window shape are batched, each model runs once per batch, and each output's kept rectangle is
written straight into the frame buffer (stdo.infer.upscale_planned). With the plan's margin at
least the models' receptive radius this equals each model run on the whole frame for the
patches it serves; below it (stdo-export's measured margin) it differs by less than the
exporter's tolerance. Backends read the bundle's own files:

  torch        models/model{i}.pt                (fp32, the reference)
  onnxruntime  models/model{i}*.onnx             (fp32, int8; any window shape)
  litert       models/model{i}*.tflite           (fp32, fp16, int8; a signature per plan shape)

A plain bundle (no model: stdo.bundle.write_plain_bundle) plays by bicubic upsampling on any backend, and at
scale 1 as the stream decodes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from stdo.errors import StdoError
from stdo.bundle import Bundle, read_bundle
from stdo.infer import TimedRunner, upscale_planned
from stdo.memory import release_free_memory
from stdo.runtimes import BACKENDS, PRECISIONS, open_runner
from stdo.runtimes import FORMATS as RUNTIME_FORMATS, signature_name
from stdo.resample import as_nchw, upscale_bicubic
from stdo.video import iter_frames, open_video

log = logging.getLogger(__name__)



@dataclass
class Timings:
    """Seconds spent per stage of playback, and frames played."""

    decode: float = 0.0
    inference: float = 0.0
    stitch: float = 0.0  # splitting into windows, grouping, stitching, rounding
    encode: float = 0.0
    frames: int = 0
    windows: int = 0
    extra: dict[str, float] = field(default_factory=dict)  # work that is not playback (e.g. metrics)

    @property
    def playback(self) -> float:
        return self.decode + self.inference + self.stitch + self.encode

    @property
    def fps(self) -> float:
        return self.frames / self.playback if self.playback > 0 else 0.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "windows": self.windows, "fps": self.fps, "seconds": {
            "decode": self.decode, "inference": self.inference, "stitch": self.stitch, "encode": self.encode,
            "playback": self.playback, **self.extra}}


class Player:
    """SR frames of a bundle with one backend; `timings` adds up where the time went."""

    def __init__(self, bundle: Bundle | Path, backend: str = "onnxruntime", precision: str = "fp32",
                 threads: int | None = None, priors: Path | None = None) -> None:
        if backend not in BACKENDS:
            raise StdoError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise StdoError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(Path(bundle), priors)
        self.scale, self.fps, self.num_frames = self.bundle.scale, self.bundle.fps, self.bundle.frames
        self.grid = self.bundle.grid
        self.backend, self.precision = backend, precision
        self.timings = Timings()
        fmt = BACKENDS[backend]
        self.model_bytes = 0  # of the variant this player runs, as the bundle ships it
        self.runners = []
        settings = f"`format={fmt!r}`" + (f" `quantize={precision!r}`" if precision != "fp32" else "")
        for index, files in enumerate(self.bundle.models):
            entry = next((f for f in files if f["format"] == fmt and f["precision"] == precision), None)
            if entry is None:
                raise StdoError(f"the bundle has no {fmt} {precision} model for model {index}: "
                                f"export it (stdo-export with {settings}), or pick another `backend` or `precision`")
            self.model_bytes += int((entry.get("update") or entry)["bytes"])  # coded: the update's
            runner = open_runner(fmt, self.bundle.file(entry), threads)
            if RUNTIME_FORMATS[fmt].signatures:
                missing = [list(s) for s in self.bundle.plan.shapes if signature_name(s) not in runner.signatures]
                if missing:
                    raise StdoError(f"the bundle's {fmt} {precision} file of model {index} has no signature for the "
                                    f"plan's window shapes {missing}: export it again (stdo-export with {settings})")
            self.runners.append(TimedRunner(runner))
        radius = self.bundle.receptive_radius
        if radius is not None and self.bundle.plan is not None and self.bundle.plan.margin < radius:
            log.info("plan margin %d < receptive radius %d: the exporter measured the output unchanged within its "
                     "tolerance (bundle/report.json: plan.margin_check)", self.bundle.plan.margin, radius)

    @property
    def delivered_bytes(self) -> dict[str, int]:
        """What a client downloads to play with this variant: the LR video, the models, the model map (the plan is
        derived from it)."""
        parts = {"video": int(self.bundle.video["bytes"]), "models": self.model_bytes,
                 "model_map": self.bundle.model_map_bytes}
        return {**parts, "total": sum(parts.values())}

    @property
    def hr_size(self) -> tuple[int, int]:
        return self.grid.width * self.scale, self.grid.height * self.scale

    def upscale(self, lr: np.ndarray, first_frame: int) -> torch.Tensor:
        """uint8 LR frames [B, h, w, 3] from frame `first_frame` on -> float SR [B, 3, H, W] in [0, 1], by the plan."""
        if self.bundle.plain:
            t0 = time.perf_counter()
            sr = upscale_bicubic(lr, self.scale).div_(255)
            self.timings.stitch += time.perf_counter() - t0
            return sr
        t0, before = time.perf_counter(), sum(r.seconds for r in self.runners)
        windows_before = sum(r.windows for r in self.runners)
        plan = self.bundle.plan
        sr = upscale_planned(as_nchw(lr).float().div_(255), plan.frame_runs(first_frame, len(lr)), plan.shapes,
                             self.scale, self.runners, first_frame=first_frame)
        inference = sum(r.seconds for r in self.runners) - before
        self.timings.inference += inference
        self.timings.stitch += time.perf_counter() - t0 - inference
        self.timings.windows += sum(r.windows for r in self.runners) - windows_before
        return sr

    def play(self, lr_frames: Iterable[np.ndarray], batch: int = 4) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield (frame index, LR uint8 [h, w, 3], SR uint8 [H, W, 3]) for LR frames in stream order.

        The frames must be the bundle's: its size, and no more or fewer frames than its plan covers.
        """
        it = iter(lr_frames)
        index = 0
        while True:
            t0 = time.perf_counter()
            group = []
            for frame in it:
                self._check_frame(frame, index + len(group))
                group.append(frame)
                if len(group) == batch:
                    break
            self.timings.decode += time.perf_counter() - t0
            if not group:
                break
            lr = np.stack(group)
            sr = self.upscale(lr, index)
            t0 = time.perf_counter()
            sr_u8 = sr.mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            self.timings.stitch += time.perf_counter() - t0
            for k in range(len(group)):
                yield index + k, lr[k], sr_u8[k]
            index += len(group)
            self.timings.frames += len(group)
            release_free_memory()  # memory flat however long the clip (stdo.memory)
        if index != self.num_frames:
            raise StdoError(f"the video ends after {index} frames, the bundle's plan covers {self.num_frames}: "
                            "give the LR video this bundle was exported with")

    def _check_frame(self, frame: np.ndarray, index: int) -> None:
        if index >= self.num_frames:
            raise StdoError(f"the video has more than the bundle's {self.num_frames} frames: "
                            "give the LR video this bundle was exported with")
        if frame.shape != (self.grid.height, self.grid.width, 3):
            raise StdoError(f"the video is {frame.shape[1]}x{frame.shape[0]}, the bundle expects "
                            f"{self.grid.width}x{self.grid.height}: give the LR video this bundle was exported with")


def lr_stream(player: Player, video: Path | None = None) -> Iterator[np.ndarray]:
    """The LR frames to play: the bundle's own video, or `video`, checked up front where the container says."""
    path = Path(video) if video is not None else player.bundle.file(player.bundle.video)
    if path.suffix != ".npy" and path.is_file():
        with open_video(path) as opened:
            width, height, declared = opened.info.width, opened.info.height, opened.info.frames
        if (width, height) != (player.grid.width, player.grid.height) or (declared and declared != player.num_frames):
            raise StdoError(f"{path} is {width}x{height} with {declared or '?'} frames, the bundle expects "
                            f"{player.grid.width}x{player.grid.height} with {player.num_frames}: "
                            "give the LR video this bundle was exported with")
    return iter_frames(path)
