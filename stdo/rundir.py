"""The RUN directory: the contract between stages.

RUN/run.json          what made the run (source, scale, grid, margin, frames, scorer, ...);
                      written last, so a RUN without it is incomplete
RUN/frames/hr.npy     uint8 [T, H, W, 3]
RUN/frames/lr.mp4     the LR stream a client receives (stdo.stream); the bundle ships these bytes
RUN/frames/lr.npy     uint8 [T, H/s, W/s, 3]: that stream decoded (stdo.colour.frame_to_rgb),
                      what every later stage trains, calibrates and evaluates on
RUN/clusters.npz      the chunk map: each patch's difficulty chunk (stdo.cluster.chunkmap)
RUN/models/<method>/  written by stdo-train: model{i}.pt, model_map.npz (the model index serving
                      each patch), state/, report.json (written last)
RUN/bundle/           written by stdo-export

A stage opens a RUN once, `open_run(path)`: run.json read and checked there, the frames memory-mapped when first
asked for, and the RUN's own places (a method's trainings, the bundle) named by it.

Every file is written atomically (temp file + os.replace).

Provenance: each clustering gets a run id (run.json "run_id"); a training records the run id it
was made from and the sha256 of every model file it wrote (report.json "run_id", "model_sha256"),
and export refuses models that do not match (another clustering, or files of different trainings,
e.g. a retraining killed half-way). Re-clustering a RUN removes its models and bundle first, and
run.json before anything else, so a re-clustering killed half-way leaves a RUN marked incomplete,
never old metadata over new frames.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from stdo.errors import StdoError
from stdo.fileio import JSONUnreadable, atomic_path, read_json, save_npy, sha256_of, temp_beside, write_json
from stdo.grid import Grid
from stdo.locks import LOCK_NAME, is_leftover

log = logging.getLogger(__name__)

RUN_FORMAT = 2  # 2: the LR stream is kept (frames/lr.mp4) and lr.npy is its decode
RUN_JSON = "run.json"
HR_FRAMES = "frames/hr.npy"
LR_FRAMES = "frames/lr.npy"
LR_STREAM = "frames/lr.mp4"
CLUSTERS = "clusters.npz"
MODELS = "models"
MODEL_MAP = "model_map.npz"
REPORT = "report.json"
BUNDLE = "bundle"
REQUIRED_KEYS = ("source", "scale", "frames", "hr_size", "lr_size", "grid", "margin")  # what later stages read


def fingerprint(source: Path) -> str:
    """sha256 of a video file's bytes, or of a frame folder's file names and sizes."""
    if source.is_file():
        return sha256_of(source)
    h = hashlib.sha256()
    for p in sorted(q for q in source.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(source).as_posix()}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


class RunInfo(dict):
    """run.json of a RUN, read once and checked: the dict as written, and what stages read of it by name."""

    @property
    def scale(self) -> int:
        return int(self["scale"])

    @property
    def grid(self) -> Grid:
        """The patch grid of the LR frames."""
        return grid_of(self)

    @property
    def frame_count(self) -> int:
        return int(self["frames"]["count"])

    @property
    def fps(self) -> float:
        return float(self["frames"].get("fps") or 25.0)  # a frame folder has no rate: 25

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


def read_run_info(run: Path) -> RunInfo:
    """run.json of a complete RUN directory, checked for format."""
    path = Path(run) / RUN_JSON
    if not path.is_file():
        raise StdoError(f"{run} is not a stdo RUN directory (no {RUN_JSON}): run stdo-cluster first")
    try:
        info = read_json(path)
    except JSONUnreadable as e:
        raise StdoError(f"{path} is damaged ({e}): rerun stdo-cluster with `overwrite=True`") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise StdoError(f"{path} has format {found!r}, this stdo reads format {RUN_FORMAT}: rerun stdo-cluster with `overwrite=True`")
    missing = [k for k in REQUIRED_KEYS if k not in info]
    grid = info.get("grid")
    if not missing and not (isinstance(grid, dict) and {"rows", "cols"} <= grid.keys()):
        missing = ["grid.rows/cols"]
    if missing:
        raise StdoError(f"{path} lacks {', '.join(missing)}: rerun stdo-cluster with `overwrite=True`")
    return RunInfo(info)


def grid_of(info: dict) -> Grid:
    """The patch grid of a RUN, from its run.json."""
    return Grid(info["lr_size"][1], info["lr_size"][0], info["grid"]["rows"], info["grid"]["cols"], info["margin"])


def method_dir(run: Path, method: str) -> Path:
    return Path(run) / MODELS / method


def model_file(index: int) -> str:
    """A trained model's state dict in its method folder (and the torch file of a bundle)."""
    return f"model{index}.pt"


def check_can_write(run: Path, source_fingerprint: str, overwrite: bool) -> None:
    """Refuse to write into a RUN made from another source, or into a folder that is not a RUN."""
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise StdoError(f"{run} is a file: give a folder for the RUN directory")
    if overwrite or not run.exists() or not any(p.name != LOCK_NAME and not is_leftover(p) for p in run.iterdir()):
        return
    if not (run / RUN_JSON).is_file():
        raise StdoError(f"{run} is not empty and is not a stdo RUN directory: give a new folder, or `overwrite` to write there")
    info = read_run_info(run)
    if info.get("source", {}).get("sha256") != source_fingerprint:
        raise StdoError(
            f"{run} was made from {info.get('source', {}).get('path')}, not this source: "
            "give another RUN folder, or `overwrite` to replace it"
        )


def clear_earlier_clustering(run: Path) -> list[str]:
    """Before a RUN is clustered again: remove run.json (the RUN reads as incomplete until the new one is written),
    then the models and bundle made from the earlier clustering; returns what was removed."""
    run = Path(run)
    (run / RUN_JSON).unlink(missing_ok=True)
    removed = []
    for name in (MODELS, BUNDLE):
        if (run / name).exists():
            shutil.rmtree(run / name)
            removed.append(name)
    if removed:
        log.warning("removed %s of %s: made from its earlier clustering", " and ".join(f"{r}/" for r in removed), run)
    return removed


class FrameFiles:
    """An Allocator (stdo.video) of memory-mapped .npy temp files in RUN/frames: a clustering decodes its frames
    straight to disk, so no clip has to fit in RAM. write_cluster_stage moves the finished hr and lr arrays
    into place; `close` removes the rest (and, after a failure, all of them)."""

    def __init__(self, run: Path) -> None:
        self.folder = Path(run) / "frames"
        self.created = not self.folder.exists()
        self.paths: list[Path] = []

    def __call__(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        path = temp_beside(self.folder / f"{name}.npy", ".npy")
        self.paths.append(path)
        frames = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        # the map's file is sparse: a full disk would arrive as SIGBUS on a write through the map, so the blocks
        # are allocated now, where a full disk is an OSError
        try:
            with open(path, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            path.unlink(missing_ok=True)
            raise StdoError(f"no room for the {name} frames ({int(np.prod(shape)):,} bytes) in {self.folder} "
                            f"({e.strerror}): free space there, or give `run` on another disk") from None
        return frames

    def close(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)
        if self.created and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()  # a clustering that failed leaves no trace


def _place_frames(frames: np.ndarray, target: Path) -> None:
    """hr.npy / lr.npy: a memory-mapped temp file beside the target is moved into place, anything else saved."""
    name = getattr(frames, "filename", None)
    if isinstance(frames, np.memmap) and name and Path(name).parent == target.parent:
        frames.flush()
        os.replace(name, target)
    else:
        save_npy(target, frames)


def write_cluster_stage(run: Path, hr: np.ndarray, lr: np.ndarray, lr_stream: Path, save_chunks, info: dict) -> None:
    """Write frames, the LR stream (copied from `lr_stream`), the chunk map (via `save_chunks(path)`), then run.json last."""
    run = Path(run)
    _place_frames(hr, run / HR_FRAMES)
    _place_frames(lr, run / LR_FRAMES)
    with atomic_path(run / LR_STREAM, suffix=".mp4") as tmp:
        shutil.copyfile(lr_stream, tmp)
    save_chunks(run / CLUSTERS)
    write_json(run / RUN_JSON, {"format": RUN_FORMAT, **info})


def load_frames(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(hr, lr) frames of a RUN, memory-mapped read-only."""
    run = Path(run)
    try:
        return np.load(run / HR_FRAMES, mmap_mode="r"), np.load(run / LR_FRAMES, mmap_mode="r")
    except FileNotFoundError as e:
        raise StdoError(f"{run} is incomplete ({Path(e.filename).name} missing): rerun stdo-cluster") from None
    except ValueError as e:
        raise StdoError(f"{run} has damaged frames ({e}): rerun stdo-cluster with `overwrite=True`") from None


class Run:
    """A RUN directory opened once (as av.open opens a video): run.json read and checked when opened, the frames
    memory-mapped read-only on first use, and where the RUN keeps what later stages write."""

    def __init__(self, path: Path, missing: str = "run stdo-cluster first") -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise StdoError(f"{self.path} does not exist: {missing}")
        self.info = read_run_info(self.path)
        self._frames: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def scale(self) -> int:
        return self.info.scale

    @property
    def grid(self) -> Grid:
        return self.info.grid

    @property
    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(hr, lr) uint8 [T, H, W, 3], memory-mapped (read once, then kept)."""
        if self._frames is None:
            self._frames = load_frames(self.path)
        return self._frames

    @property
    def hr(self) -> np.ndarray:
        return self.frames[0]

    @property
    def lr(self) -> np.ndarray:
        return self.frames[1]

    def trained(self, method: str) -> Path:
        """The folder of a method's training (stdo-train's output)."""
        return method_dir(self.path, method)

    @property
    def bundle_dir(self) -> Path:
        """Where stdo-export writes the bundle unless told otherwise."""
        return self.path / BUNDLE

    def __str__(self) -> str:
        return str(self.path)


def open_run(path: Path, missing: str = "run stdo-cluster first") -> Run:
    """Open a RUN directory (`missing`: the advice when there is none)."""
    return Run(path, missing)
