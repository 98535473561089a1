"""Group patches into k chunks by difficulty. Chunk 0 is the hardest (lowest score).

- quantile: STDO's rule, k equal-count bins of the score (ties broken by position, so
  counts differ by at most one).
- kmeans: scikit-learn KMeans on the standardized features, clusters renumbered by
  their mean score.

Both are deterministic for a seed. Thresholds are the score boundaries between
consecutive chunks (for kmeans, midpoints between the chunks' mean scores).

`hold_chunks` regularizes a partition in time: each patch's chunk becomes the median of its
chunks over a few frames centred on it (chunk ids are ordered by difficulty, so the median is
one of them), so a patch whose score hovers at a threshold does not flip between models
from frame to frame, and the model map the bundle ships (coded patch by patch through time)
deflates to far less; the patches it moves sat at a threshold, where either model serves.

`smooth_chunks` optionally regularizes a partition in space: each pass gives every patch
the chunk most common in its 3x3 neighbourhood (its own on ties), so the chunk map has fewer,
larger same-chunk regions and the inference plan needs fewer, larger windows, at the price of
some patches served by the model of a neighbouring difficulty.
"""

from __future__ import annotations

import numpy as np

from stdo.errors import StdoError

PARTITIONS = ("quantile", "kmeans")
MAX_CHUNKS = 255  # chunk ids are stored as uint8


def check_chunk_count(num_chunks: int, num_patches: int) -> None:
    if num_chunks < 1:
        raise StdoError(f"`chunks` {num_chunks} is below 1: give 1 or more chunks")
    if num_chunks > MAX_CHUNKS:
        raise StdoError(f"`chunks` {num_chunks} is above {MAX_CHUNKS}: chunk ids are stored in one byte")
    if num_chunks > num_patches:
        raise StdoError(f"`chunks` {num_chunks} is more than the {num_patches} patches of the clip: use fewer chunks or a finer grid")


def partition_quantile(scores: np.ndarray, num_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks uint8 like scores, thresholds float32 [k-1]): k equal-count bins, lowest scores in chunk 0."""
    flat = scores.ravel()
    check_chunk_count(num_chunks, flat.size)
    order = np.argsort(flat, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(flat.size)
    chunks = (ranks * num_chunks // flat.size).astype(np.uint8)
    bounds = [(i * flat.size + num_chunks - 1) // num_chunks for i in range(1, num_chunks)]  # first rank of chunk i
    sorted_scores = flat[order]
    thresholds = np.array([(sorted_scores[b - 1] + sorted_scores[b]) / 2 for b in bounds], np.float32)
    return chunks.reshape(scores.shape), thresholds


def partition_kmeans(scores: np.ndarray, features: np.ndarray, num_chunks: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(chunks uint8 like scores, thresholds float32 [k-1]): KMeans on standardized features, ordered by mean score."""
    from sklearn.cluster import KMeans

    flat_scores = scores.ravel().astype(np.float64)
    x = features.reshape(flat_scores.size, -1).astype(np.float64)
    check_chunk_count(num_chunks, flat_scores.size)
    distinct = len(np.unique(x, axis=0))
    if distinct < num_chunks:
        raise StdoError(
            f"the patches have only {distinct} distinct feature values for {num_chunks} chunks: "
            "use fewer `chunks` or `partition` quantile"
        )
    std = x.std(0)
    x = (x - x.mean(0)) / np.where(std > 0, std, 1.0)
    labels = KMeans(n_clusters=num_chunks, n_init=10, random_state=seed).fit_predict(x)
    means = np.array([flat_scores[labels == i].mean() for i in range(num_chunks)])
    order = np.argsort(means, kind="stable")  # hardest (lowest mean score) first
    rank_of = np.empty(num_chunks, np.int64)
    rank_of[order] = np.arange(num_chunks)
    chunks = rank_of[labels].astype(np.uint8).reshape(scores.shape)
    sorted_means = means[order]
    thresholds = ((sorted_means[:-1] + sorted_means[1:]) / 2).astype(np.float32)
    return chunks, thresholds


def check_hold(frames: int) -> None:
    if frames < 1 or frames % 2 == 0:
        raise StdoError(f"`hold` {frames} is not an odd number of frames: give 1 (off), 3, 5, ...")


def hold_chunks(chunks: np.ndarray, frames: int) -> np.ndarray:
    """Each patch's chunk [T, rows, cols] the median of its chunks over `frames` frames centred on it (odd; the
    clip's ends repeat their first and last frame); 1 leaves the chunks as they are."""
    check_hold(frames)
    out = np.asarray(chunks, np.uint8)
    if frames == 1:
        return out
    half = frames // 2
    padded = np.concatenate([np.repeat(out[:1], half, 0), out, np.repeat(out[-1:], half, 0)])
    window = np.stack([padded[i : i + len(out)] for i in range(frames)])
    return np.sort(window, axis=0)[half]


def smooth_chunks(chunks: np.ndarray, passes: int, num_chunks: int) -> np.ndarray:
    """`passes` rounds of a 3x3 majority filter over each frame's chunks [T, rows, cols] (ties keep the patch's own)."""
    if passes < 0:
        raise StdoError(f"`smooth` {passes} is negative: give 0 (off) or more passes")
    out = np.asarray(chunks, np.uint8)
    for _ in range(passes):
        votes = np.zeros(out.shape + (num_chunks,), np.float32)
        onehot = np.eye(num_chunks, dtype=np.float32)[out]
        padded = np.pad(onehot, ((0, 0), (1, 1), (1, 1), (0, 0)))
        rows, cols = out.shape[1:]
        for dy in range(3):
            for dx in range(3):
                votes += padded[:, dy : dy + rows, dx : dx + cols]
        votes += 0.5 * onehot  # a tie keeps the patch's own chunk
        smoothed = votes.argmax(-1).astype(np.uint8)
        if np.array_equal(smoothed, out):
            break
        out = smoothed
    return out


def partition(method: str, scores: np.ndarray, features: np.ndarray, num_chunks: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if method == "quantile":
        return partition_quantile(scores, num_chunks)
    if method == "kmeans":
        return partition_kmeans(scores, features, num_chunks, seed)
    raise StdoError(f"unknown partition {method!r}: use one of {', '.join(PARTITIONS)}")
