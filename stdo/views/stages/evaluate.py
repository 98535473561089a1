"""stdo-views eval: per-view PSNR/SSIM against a reference scene and multi-view consistency."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from stdo.errors import StdoError
from stdo.options import flag
from stdo.metrics import psnr, ssim
from stdo.resample import as_nchw
from stdo.views import geometry, order as ordering, scene as scenes
from stdo.progress import StageProgress
from stdo.views.stages import read_order


@dataclass
class EvalOptions:
    views: Path
    reference: Path
    order: Path | None = flag(None, "Neighbours from these sequences [default: each view's nearest by pose].",
                              type=click.Path(path_type=Path))
    neighbours: int = flag(2, "Nearest views per view.")
    split: str = flag("train", "NeRF scenes: the transforms_<split>.json to read.")
    shave: int = 4


def evaluate_views(o: EvalOptions, progress: StageProgress = None) -> dict:
    """Per-view PSNR/SSIM against the reference views, and multi-view consistency of both: each view warped into
    its neighbours with the reference's depth and poses, mean absolute error (grey levels) and PSNR in the overlap."""
    sr = scenes.read_views(Path(o.views), o.split)
    ref = scenes.read_views(Path(o.reference), o.split)
    if sr.names != ref.names or sr.size != ref.size:
        raise StdoError(f"{o.views} and {o.reference} hold different views or sizes: compare a scene with its own "
                        "reference")
    per_view = []
    sr_images = [sr.image(i) for i in range(len(sr))]
    ref_images = [ref.image(i) for i in range(len(ref))]
    for a, b in zip(sr_images, ref_images):
        x, y = as_nchw(a[None]).float(), as_nchw(b[None]).float()
        per_view.append({"psnr": float(psnr(x, y, shave=o.shave)[0]), "ssim": float(ssim(x, y, shave=o.shave)[0])})
    report = {"views": len(sr), "psnr": float(np.mean([v["psnr"] for v in per_view])),
              "ssim": float(np.mean([v["ssim"] for v in per_view])), "per_view": per_view}
    if ref.depth is None or ref.poses is None:
        report["consistency"] = None
        report["consistency_note"] = "the reference has no depth maps: consistency needs exact geometry"
        return report
    pairs = _neighbour_pairs(ref, o)
    seen = [geometry.DepthView(np.load(path), k, c2w) for path, k, c2w in zip(ref.depth, ref.intrinsics, ref.poses)]
    figures = {"views": [], "reference": []}
    for n, (i, j) in enumerate(pairs):
        for key, images in (("views", sr_images), ("reference", ref_images)):
            warped, valid = geometry.warp_into(images[i].astype(np.float32), seen[i], seen[j])
            if valid.sum() < 16:
                continue
            diff = np.abs(warped[valid] - images[j][valid].astype(np.float32))
            figures[key].append((float(diff.mean()), float((diff ** 2).mean()), int(valid.sum())))
        if progress:
            progress("consistency", 1, len(pairs))
    report["consistency"] = {key: _pooled(vals) for key, vals in figures.items()}
    report["consistency"]["pairs"] = len(figures["views"])
    return report


def _pooled(values: list[tuple[float, float, int]]) -> dict | None:
    if not values:
        return None
    weights = np.array([v[2] for v in values], dtype=np.float64)
    mae = float(np.average([v[0] for v in values], weights=weights))
    mse = float(np.average([v[1] for v in values], weights=weights))
    return {"mae": mae, "psnr": float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))}


def _neighbour_pairs(views: scenes.ViewSet, o: EvalOptions) -> list[tuple[int, int]]:
    """(i, j) pairs to warp i into j: consecutive views of the ordered sequences, or each view's nearest by pose."""
    if o.order is not None:
        record = read_order(o.order)
        index = {name: i for i, name in enumerate(views.names)}
        pairs = {(index[s["views"][k]], index[s["views"][k + 1]]) for s in record["sequences"]
                 for k in range(len(s["views"]) - 1)}
        return sorted(pairs | {(j, i) for i, j in pairs})
    angles = ordering.pose_distances(views.centres())
    np.fill_diagonal(angles, np.inf)
    nearest = np.argsort(angles, axis=1)[:, : o.neighbours]
    return sorted({(i, int(j)) for i in range(len(views)) for j in nearest[i]})
