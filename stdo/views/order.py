"""SequenceMatters' orderings of unordered views into video-like sequences (Ko et al., AAAI 2025).

Similarities (lower = more alike), as in the paper's release:
  pose:    the angle in degrees between the two camera centres seen from the world origin;
  feature: ORB (500 keypoints), brute-force Hamming matching with cross-check, mean match distance
           (inf when either view has no descriptors or nothing matches); views with a short side under
           160 pixels are enlarged for ORB, which finds nothing within 31 pixels of a border.
Each gives a rank matrix: rank[i, j] = the place of view j in view i's list sorted by distance.

A chain starts at a reference view and appends, again and again, the unused view ranked first by the
ordering similarity from the current one; it stops when the other similarity says the next step is
too far: ordered by feature, cut when the pose angle exceeds the threshold (degrees); ordered by pose,
cut when the candidate's feature rank exceeds it.

S (simple): one chain from view 0 with no cut, split into sequences of `length`; a short last piece is
replaced by the chain's last `length` views (overlapping the previous sequence). A view is written
by the first sequence that holds it.
ALS (adaptive-length subsequences): for each threshold from strictest to loosest, a chain from every
reference view, cut by that threshold and truncated to `length`; chains of 2 views or fewer are skipped
except in the last pass; a chain whose views are all written already is skipped; of the others, the
views not yet written are written, except the chain's two ends before the last pass (their neighbours
are on one side only). The last threshold is the last pass; when it cuts nothing every view is written.

Defaults follow the release: Blender-synthetic S / feature / 100 views per sequence; Mip-NeRF 360 ALS /
pose / 8 views per sequence / feature-rank thresholds 30, 50 and a final uncut pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stdo.errors import StdoError

STRATEGIES = ("s", "als")
SIMILARITIES = ("pose", "feature")
ORB_KEYPOINTS = 500
ORB_MIN_SIDE = 160  # pixels: smaller views are enlarged for ORB (see orb_descriptors)


@dataclass
class Sequence:
    views: list[int]  # view indices in sequence order
    keep: list[bool]  # whether the output of each position is the one written for its view

    def to_dict(self, names: list[str]) -> dict:
        return {"views": [names[v] for v in self.views], "keep": self.keep}


def default_thresholds(similarity: str, views: int) -> list[float]:
    """The release's thresholds: pose ordering cut by feature rank 30, 50, then uncut; feature ordering by 45 deg."""
    return [30.0, 50.0, float(views)] if similarity == "pose" else [45.0]


def default_length(strategy: str) -> int:
    return 100 if strategy == "s" else 8


def pose_distances(centres: np.ndarray) -> np.ndarray:
    """[N, N] angle in degrees between camera-centre vectors from the origin."""
    c = np.asarray(centres, dtype=np.float64)
    norms = np.linalg.norm(c, axis=1)
    if np.any(norms < 1e-12):
        raise StdoError("a camera centre is at the world origin, so its angle to the others is undefined: use "
                        "`similarity` feature, or recentre the scene")
    unit = c / norms[:, None]
    angles = np.degrees(np.arccos(np.clip(unit @ unit.T, -1.0, 1.0)))
    np.fill_diagonal(angles, 0.0)
    return angles


def orb_descriptors(images: list[np.ndarray]) -> list[np.ndarray | None]:
    """ORB descriptors of each view. ORB finds nothing within 31 pixels of the border (its patch size), so a view
    whose short side is under ORB_MIN_SIDE is enlarged (bicubic) to that first: tiny LR views still match."""
    import cv2

    orb = cv2.ORB_create(nfeatures=ORB_KEYPOINTS)
    out = []
    for im in images:
        gray = cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY)
        factor = ORB_MIN_SIDE / min(gray.shape)
        if factor > 1:
            gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        out.append(orb.detectAndCompute(gray, None)[1])
    return out


def feature_distances(descriptors: list[np.ndarray | None]) -> np.ndarray:
    """[N, N] mean Hamming distance of cross-checked ORB matches (inf where nothing matches)."""
    import cv2

    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    n = len(descriptors)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if descriptors[i] is None or descriptors[j] is None:
                out[i, j] = math.inf
                continue
            matches = matcher.match(descriptors[i], descriptors[j])
            out[i, j] = float(np.mean([m.distance for m in matches])) if matches else math.inf
    return out


def ranks(distances: np.ndarray) -> np.ndarray:
    """rank[i, j]: the place of j in row i sorted by distance (stable, so ties keep index order)."""
    order = np.argsort(distances, axis=1, kind="stable")
    out = np.empty_like(order)
    rows = np.arange(len(distances))[:, None]
    out[rows, order] = np.arange(distances.shape[1])[None, :]
    return out


def chain(reference: int, order_rank: np.ndarray, cut: np.ndarray | None = None,
          threshold: float = math.inf) -> list[int]:
    """Greedy chain from `reference`: the unused view ranked first from the current one, until `cut[current,
    candidate]` exceeds `threshold` or every view is used."""
    n = len(order_rank)
    used = np.zeros(n, dtype=bool)
    used[reference] = True
    path = [reference]
    while len(path) < n:
        current = path[-1]
        candidates = np.where(used, n, order_rank[current])
        candidate = int(np.argmin(candidates))
        if cut is not None and cut[current, candidate] > threshold:
            break
        used[candidate] = True
        path.append(candidate)
    return path


def order_s(order_rank: np.ndarray, length: int) -> list[Sequence]:
    return split_path(chain(0, order_rank), length)


def split_path(path: list[int], length: int) -> list[Sequence]:
    """S's cut of one ordered path into sequences of `length` (the last one overlapping the one before)."""
    written: set[int] = set()
    sequences = []
    for start in range(0, len(path), length):
        views = path[start : start + length]
        if len(views) < length:
            views = path[-length:]
        sequences.append(Sequence(views, [v not in written for v in views]))
        written.update(views)
    return sequences


def order_als(order_rank: np.ndarray, cut: np.ndarray, thresholds: list[float], length: int) -> list[Sequence]:
    n = len(order_rank)
    written: set[int] = set()
    sequences = []
    for p, threshold in enumerate(thresholds):
        last = p == len(thresholds) - 1
        for reference in range(n):
            if len(written) == n:
                return sequences
            views = chain(reference, order_rank, cut, threshold)
            if len(views) <= 2 and not last:
                continue
            views = views[:length]
            if all(v in written for v in views):
                continue
            keep = [v not in written and (last or 0 < k < len(views) - 1) for k, v in enumerate(views)]
            if any(keep):
                sequences.append(Sequence(views, keep))
                written.update(v for v, kept in zip(views, keep) if kept)
    return sequences


def order_views(strategy: str, similarity: str, centres: np.ndarray | None, images: list[np.ndarray] | None,
                length: int | None = None, thresholds: list[float] | None = None) -> tuple[list[Sequence], dict]:
    """Sequences of view indices by the named strategy and ordering similarity; and what was used."""
    if strategy not in STRATEGIES:
        raise StdoError(f"unknown strategy {strategy!r}: use s or als")
    if similarity not in SIMILARITIES:
        raise StdoError(f"unknown similarity {similarity!r}: use pose or feature")
    needs_pose = similarity == "pose" or strategy == "als"
    needs_features = similarity == "feature" or strategy == "als"
    if needs_pose and centres is None:
        raise StdoError("this ordering needs camera poses and the views have none: use `strategy` s with "
                        "`similarity` feature, or give a NeRF or COLMAP scene")
    n = len(centres) if centres is not None else len(images)
    length = length or default_length(strategy)
    if length < 1:
        raise StdoError(f"`length` {length} is below 1: give the views per sequence")
    pose = pose_distances(centres) if needs_pose else None
    feature = feature_distances(orb_descriptors(images)) if needs_features else None
    order_rank = ranks(pose if similarity == "pose" else feature)
    if strategy == "s":
        return order_s(order_rank, min(length, n)), {"length": min(length, n)}
    thresholds = thresholds or default_thresholds(similarity, n)
    cut = ranks(feature) if similarity == "pose" else pose  # pose order cut by feature rank; feature by angle
    return order_als(order_rank, cut, list(thresholds), length), {"length": length, "thresholds": list(thresholds)}


def random_sequences(n: int, length: int, seed: int = 0) -> list[Sequence]:
    """The control: the views in a random order, cut as S cuts its chain."""
    return split_path([int(v) for v in np.random.default_rng(seed).permutation(n)], min(length, n))


def kendall_tau(order: list[int], truth: list[int]) -> float:
    """Kendall's tau between an ordering and the true one (1 = the same, -1 = reversed)."""
    place = {v: i for i, v in enumerate(truth)}
    x = np.array([place[v] for v in order])
    n = len(x)
    concordant = sum(int(np.sum(np.sign(x[i + 1 :] - x[i]))) for i in range(n - 1))
    return concordant / (n * (n - 1) / 2)
