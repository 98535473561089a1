"""stdo-cluster as a library call: source -> RUN (frames, scores, chunk map, run.json).

Everything is checked before anything is written, so bad input leaves the RUN as it was.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import click
import numpy as np
import torch

import stdo
from stdo.cluster.chunkmap import ChunkMap, save_chunkmap
from stdo.cluster.partition import (PARTITIONS, check_chunk_count, check_hold, hold_chunks, partition,
                                    smooth_chunks)
from stdo.cluster.score import SCORERS, score_bicubic, score_dct, score_model
from stdo.errors import StdoError, check_device
from stdo.grid import GRID, Grid
from stdo.metrics import min_patch
from stdo.models import load_wdsr
from stdo.locks import stage_lock, sweep_leftovers
from stdo.rundir import (LR_STREAM, FrameFiles, check_can_write, clear_earlier_clustering, fingerprint,
                         write_cluster_stage)
from stdo.stream import StreamOptions
from stdo.clip import CROP, Crop, Cut, load_clip, ship_lr_stream, source_kind
from stdo.options import flag
from stdo.video import open_video
from stdo.progress import StageProgress

log = logging.getLogger(__name__)



@dataclass
class ClusterOptions:
    """What stdo-cluster does, field by field; each field is the command's flag of the same meaning (its defaults
    live here, once). Errors name a field in backticks, as `crf`."""

    source: Path
    run: Path
    scale: int = flag(4, "Upscaling factor (2 or more).")
    grid: tuple[int, int] = flag((10, 5), "Patches per LR frame, COLSxROWS (STDO: 20x10 at x2, 10x5 at x4 on 1080p).",
                                 type=GRID, metavar="COLSxROWS")
    margin: int = flag(8, "Context margin in LR pixels read around each patch at inference.")
    chunks: int = flag(2, "Number of chunks (models) k.")
    scorer: str = flag("bicubic", "Patch difficulty: bicubic PSNR, a general WDSR model's PSNR, or DCT energy (no HR).",
                       type=click.Choice(SCORERS))
    checkpoint: Path | None = flag(None, "WDSR checkpoint for --scorer general (STDO/WDSR release format or stdo's).",
                                   type=click.Path(path_type=Path))
    partition: str = flag("quantile", "quantile: k equal-count bins (STDO); kmeans: KMeans on standardized features.",
                          type=click.Choice(PARTITIONS))
    smooth: int = flag(0, "Passes of a 3x3 majority filter over the chunk map: larger same-chunk regions, so playback "
                       "runs fewer, larger windows; some patches then get a neighbouring difficulty's model. 0 = off.",
                       metavar="PASSES")
    hold: int = flag(1, "Each patch's chunk is the median of its chunks over FRAMES frames (odd): a patch at a "
                     "threshold stops flipping between models, and the model map a client downloads shrinks. 1 = off.",
                     metavar="FRAMES")
    seed: int = flag(0, "Seed for kmeans.")
    start: int = flag(0, "First frame to use (0-based).")
    frames: int | None = flag(None, "Number of frames to use [default: all].", type=int)
    crop: Crop | None = flag(None, "Crop of the HR frames, in HR pixels; sizes are cut to a multiple of the scale "
                             "(twice the scale for a 4:2:0 LR stream, which needs even LR sizes).", type=CROP,
                             metavar="WxH+X+Y")
    lr_video: Path | None = flag(None, "LR video or frame folder matching SOURCE [default: bicubic downscaling of "
                                 "SOURCE].", type=click.Path(path_type=Path))
    stream: StreamOptions | None = None  # the LR stream; None: the default (or a given --lr-video as it is)
    device: str = flag("cpu", "Torch device for --scorer general.")
    overwrite: bool = flag(False, "Replace RUN even if it was made from another source.")


@dataclass
class ClusterSummary:
    run: Path
    frames: int
    hr_size: tuple[int, int]  # (width, height)
    lr_size: tuple[int, int]
    grid: tuple[int, int]
    patches: int
    counts: list[int]
    thresholds: list[float]
    score_range: tuple[float, float]
    seconds: float
    stream: dict = field(default_factory=dict)  # the shipped LR stream described (stdo.video.Video.describe)
    timings: dict[str, float] = field(default_factory=dict)


def _check_options(o: ClusterOptions) -> None:
    if not Path(o.source).exists():
        raise StdoError(f"{o.source} does not exist: give a video file or a folder of frames")
    if o.scale < 2:
        raise StdoError(f"`scale` {o.scale} is below 2: super-resolution needs a scale of 2 or more")
    if o.scorer not in SCORERS:
        raise StdoError(f"unknown scorer {o.scorer!r}: use one of {', '.join(SCORERS)}")
    check_device(o.device)
    if o.partition not in PARTITIONS:
        raise StdoError(f"unknown partition {o.partition!r}: use one of {', '.join(PARTITIONS)}")
    if o.scorer == "general" and o.checkpoint is None:
        raise StdoError("`scorer` general needs `checkpoint`: give a WDSR checkpoint (.pt/.pth)")
    if o.chunks < 1:
        raise StdoError(f"`chunks` {o.chunks} is below 1: give 1 or more chunks")
    if o.margin < 0:
        raise StdoError(f"`margin` {o.margin} is negative: give 0 or more LR pixels")
    if o.smooth < 0:
        raise StdoError(f"`smooth` {o.smooth} is negative: give 0 (off) or more passes")
    check_hold(o.hold)
    if o.stream is not None:
        o.stream.check()


def load_general_model(path: Path, scale: int) -> torch.nn.Module:
    """A WDSR checkpoint (STDO/WDSR release format or stdo's own) for the `general` scorer."""
    if not Path(path).is_file():
        raise StdoError(f"checkpoint {path} does not exist: give the path of a WDSR .pt/.pth file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model = load_wdsr(checkpoint)
    except (pickle.UnpicklingError, RuntimeError, ValueError, KeyError, EOFError, OSError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise StdoError(f"checkpoint {path} is not a WDSR checkpoint ({first_line[:120]}): give a WDSR-A state dict") from None
    if model.config.scale != scale:
        raise StdoError(f"checkpoint {path} is a x{model.config.scale} model but `scale` is {scale}: give a x{scale} checkpoint")
    return model


def check_grid(grid: Grid, scale: int) -> None:
    """Every HR patch must keep pixels after the STDO protocol's shave (scale+4 on each side)."""
    need = min_patch(scale)
    h, w = grid.smallest_patch
    if h < need or w < need:
        raise StdoError(
            f"grid {grid.cols}x{grid.rows} is finer than the {grid.width}x{grid.height} LR frame allows at x{scale}: "
            f"patches of {w}x{h} LR pixels, need at least {need}x{need}; use a coarser `grid`"
        )


def _expected_frames(source: Path, o: ClusterOptions) -> int | None:
    """Frames to decode, for the progress bar: --frames, else what the container declares (None if unknown)."""
    if o.frames is not None or not source.is_file():
        return o.frames
    try:
        with open_video(source) as video:
            declared = video.info.frames
    except StdoError:
        return None  # load_clip reports the problem
    return max(declared - o.start, 0) or None


def cluster(o: ClusterOptions, progress: StageProgress = None) -> ClusterSummary:
    t0 = time.perf_counter()
    _check_options(o)
    source = Path(o.source)
    model = load_general_model(o.checkpoint, o.scale) if o.scorer == "general" else None
    source_sha = fingerprint(source)
    check_can_write(Path(o.run), source_sha, o.overwrite)
    with stage_lock(Path(o.run), f"RUN {o.run}"):
        sweep_leftovers(Path(o.run))
        frame_files = FrameFiles(Path(o.run))  # frames decoded straight to disk: memory does not grow with the clip
        try:
            return _cluster(o, source_sha, model, progress, t0, frame_files)
        finally:
            frame_files.close()


def _cluster(o: ClusterOptions, source_sha: str, model, progress: StageProgress, t0: float,
             frame_files: FrameFiles) -> ClusterSummary:
    """Decode, ship the LR stream, score, partition and write the RUN (`t0`: when the command began)."""
    source, timings = Path(o.source), {}
    clip = load_clip(
        source, o.scale, Cut(o.start, o.frames, o.crop), lr_source=o.lr_video, stream=o.stream,
        progress=partial(progress, "decode", total=_expected_frames(source, o)) if progress else None,
        allocate=frame_files,
    )
    timings["decode"] = time.perf_counter() - t0
    t, lh, lw, _ = clip.lr.shape
    cols, rows = o.grid
    grid = Grid(lh, lw, rows, cols, o.margin)
    check_grid(grid, o.scale)
    check_chunk_count(o.chunks, t * grid.num_patches)

    with tempfile.TemporaryDirectory(prefix="stdo-lr-") as tmp:
        t1 = time.perf_counter()
        stream_path = Path(tmp) / "lr.mp4"
        lr = ship_lr_stream(clip, stream_path, o.stream, frame_files)  # every later stage sees the decoded stream
        with open_video(stream_path) as video:
            shipped = video.describe()
        timings["stream"] = time.perf_counter() - t1

        t1 = time.perf_counter()
        step = partial(progress, "score", total=t) if progress else None
        if o.scorer == "bicubic":
            scores = score_bicubic(clip.hr, lr, grid, o.scale, progress=step)
        elif o.scorer == "general":
            scores = score_model(clip.hr, lr, grid, o.scale, model, device=o.device, progress=step)
        else:
            scores = score_dct(lr, grid, progress=step)
        chunks, thresholds = partition(o.partition, scores.scores, scores.features, o.chunks, o.seed)
        chunks = smooth_chunks(hold_chunks(chunks, o.hold), o.smooth, o.chunks)
        timings["score+partition"] = time.perf_counter() - t1
        cmap = ChunkMap(scores.scores, chunks, thresholds, scores.features)

        stream_options = None if clip.lr_video is not None else (o.stream or StreamOptions()).to_dict()
        info = {
            "run_id": uuid.uuid4().hex,  # what every model and bundle made from this clustering carries
            "tool": f"stdo {stdo.__version__}",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": {"path": str(source.resolve()), "kind": source_kind(source, o.scale), "sha256": source_sha},
            "lr": {"origin": clip.lr_origin, "path": str(Path(o.lr_video).resolve()) if o.lr_video else None,
                   "kept_as_given": clip.lr_video is not None, "encoder_options": stream_options,
                   "stream": {"path": LR_STREAM, **shipped}},
            "scale": o.scale,
            "frames": {"start": o.start, "count": t, "fps": clip.fps},
            "crop": str(o.crop) if o.crop else None,
            "hr_size": [int(clip.hr.shape[2]), int(clip.hr.shape[1])],
            "lr_size": [lw, lh],
            "grid": {"cols": cols, "rows": rows, "row_edges": grid.row_edges.tolist(), "col_edges": grid.col_edges.tolist()},
            "margin": o.margin,
            "scorer": {"name": o.scorer, "checkpoint": str(o.checkpoint) if o.checkpoint else None,
                       "features": list(scores.feature_names)},
            "partition": {"name": o.partition, "chunks": o.chunks, "seed": o.seed, "smooth": o.smooth, "hold": o.hold,
                          "thresholds": [float(x) for x in thresholds], "counts": cmap.counts.tolist()},
        }
        t2 = time.perf_counter()
        clear_earlier_clustering(Path(o.run))
        write_cluster_stage(Path(o.run), clip.hr, lr, stream_path, partial(save_chunkmap, cmap=cmap), info)
        timings["write"] = time.perf_counter() - t2
    log.info("clustered %d frames into %d chunks in %s", t, o.chunks, o.run)
    return ClusterSummary(
        run=Path(o.run), frames=t, hr_size=(int(clip.hr.shape[2]), int(clip.hr.shape[1])), lr_size=(lw, lh),
        grid=(cols, rows), patches=t * grid.num_patches, counts=cmap.counts.tolist(),
        thresholds=[float(x) for x in thresholds],
        score_range=(float(np.min(scores.scores)), float(np.max(scores.scores))),
        seconds=time.perf_counter() - t0, stream=shipped, timings=timings,
    )
