"""The chunk map and its file, RUN/clusters.npz.

Arrays: scores float32 [T, rows, cols] (higher = easier), chunks uint8 [T, rows, cols]
(0 = hardest), thresholds float32 [k-1], counts int64 [k] (patches per chunk),
features float32 [T, rows, cols, F].
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stdo.errors import StdoError
from stdo.fileio import save_npz


@dataclass
class ChunkMap:
    scores: np.ndarray
    chunks: np.ndarray
    thresholds: np.ndarray
    features: np.ndarray

    @property
    def num_chunks(self) -> int:
        return len(self.thresholds) + 1

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.chunks.ravel(), minlength=self.num_chunks)

    def validate(self) -> None:
        if self.scores.shape != self.chunks.shape or self.scores.ndim != 3:
            raise ValueError(f"scores {self.scores.shape} and chunks {self.chunks.shape} must both be [T, rows, cols]")
        if self.chunks.size and int(self.chunks.max()) >= self.num_chunks:
            raise ValueError(f"chunk id {int(self.chunks.max())} out of range for {self.num_chunks} chunks")


def save_chunkmap(path: Path, cmap: ChunkMap) -> None:
    cmap.validate()
    save_npz(
        path,
        scores=cmap.scores.astype(np.float32),
        chunks=cmap.chunks.astype(np.uint8),
        thresholds=cmap.thresholds.astype(np.float32),
        counts=cmap.counts.astype(np.int64),
        features=cmap.features.astype(np.float32),
    )


def load_chunkmap(path: Path) -> ChunkMap:
    try:
        with np.load(path, allow_pickle=False) as z:
            cmap = ChunkMap(z["scores"], z["chunks"], z["thresholds"], z["features"])
        cmap.validate()
    except FileNotFoundError:
        raise StdoError(f"{path} is missing: run stdo-cluster first") from None
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise StdoError(f"{path} is damaged or from another version ({e}): rerun stdo-cluster") from None
    return cmap
