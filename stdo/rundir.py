"""The RUN directory: the contract between stages.

RUN/run.json          what made the run (source, scale, grid, margin, frames, scorer, ...);
                      written last, so a RUN without it is incomplete
RUN/frames/hr.npy     uint8 [T, H, W, 3]
RUN/frames/lr.mp4     the LR stream a client receives (stdo.stream); the bundle ships these bytes
RUN/frames/lr.npy     uint8 [T, H/s, W/s, 3]: that stream decoded (stdo.stream.frame_to_rgb),
                      what every later stage trains, calibrates and evaluates on
RUN/clusters.npz      the chunk map: each patch's difficulty chunk (stdo.cluster.chunkmap)
RUN/models/<method>/  written by stdo-train: model{i}.pt, model_map.npz (the model index serving
                      each patch), state/, report.json (written last)
RUN/bundle/           written by stdo-export

Every file is written atomically (temp file + os.replace).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from stdo.errors import StdoError
from stdo.fileio import atomic_path, save_npy, write_json
from stdo.grid import Grid

RUN_FORMAT = 2  # 2: the LR stream is kept (frames/lr.mp4) and lr.npy is its decode
RUN_JSON = "run.json"
HR_FRAMES = "frames/hr.npy"
LR_FRAMES = "frames/lr.npy"
LR_STREAM = "frames/lr.mp4"
CLUSTERS = "clusters.npz"
MODELS = "models"
MODEL_MAP = "model_map.npz"
REPORT = "report.json"


def fingerprint(source: Path) -> str:
    """sha256 of a video file's bytes, or of a frame folder's file names and sizes."""
    h = hashlib.sha256()
    if source.is_file():
        with open(source, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    else:
        for p in sorted(q for q in source.rglob("*") if q.is_file()):
            h.update(f"{p.relative_to(source).as_posix()}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def read_run_info(run: Path) -> dict:
    """run.json of a complete RUN directory, checked for format."""
    path = Path(run) / RUN_JSON
    if not path.is_file():
        raise StdoError(f"{run} is not a stdo RUN directory (no {RUN_JSON}): run stdo-cluster first")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StdoError(f"{path} is damaged ({e.__class__.__name__}): rerun stdo-cluster with --force") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise StdoError(f"{path} has format {found!r}, this stdo reads format {RUN_FORMAT}: rerun stdo-cluster with --force")
    return info


def grid_of(info: dict) -> Grid:
    """The patch grid of a RUN, from its run.json."""
    return Grid(info["lr_size"][1], info["lr_size"][0], info["grid"]["rows"], info["grid"]["cols"], info["margin"])


def method_dir(run: Path, method: str) -> Path:
    return Path(run) / MODELS / method


def model_file(index: int) -> str:
    """A trained model's state dict in its method folder (and the torch file of a bundle)."""
    return f"model{index}.pt"


def check_can_write(run: Path, source_fingerprint: str, force: bool) -> None:
    """Refuse to write into a RUN made from another source, or into a folder that is not a RUN."""
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise StdoError(f"{run} is a file: give a folder for the RUN directory")
    if force or not run.exists() or not any(run.iterdir()):
        return
    if not (run / RUN_JSON).is_file():
        raise StdoError(f"{run} is not empty and is not a stdo RUN directory: give a new folder, or --force to write there")
    info = read_run_info(run)
    if info.get("source", {}).get("sha256") != source_fingerprint:
        raise StdoError(
            f"{run} was made from {info.get('source', {}).get('path')}, not this source: "
            "give another RUN folder, or --force to replace it"
        )


def write_cluster_stage(run: Path, hr: np.ndarray, lr: np.ndarray, lr_stream: Path, save_chunks, info: dict) -> None:
    """Write frames, the LR stream (copied from `lr_stream`), the chunk map (via `save_chunks(path)`), then run.json last."""
    run = Path(run)
    save_npy(run / HR_FRAMES, hr)
    save_npy(run / LR_FRAMES, lr)
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
        raise StdoError(f"{run} has damaged frames ({e}): rerun stdo-cluster --force") from None
