"""stdo-views as library calls: synth (a scene with exact geometry), order, upscale and eval of multi-view sets.

The path from views to a 3D trainer, as SequenceMatters takes it, with stdo's models as upscalers:

  order SCENE -> ORDER/      sequences.json (the sequences, and which output is kept for each view)
                             frames/ (every sequence's views one after another: a frame folder)
  stdo-cluster ORDER/frames RUN --lossless ...; stdo-train RUN --method M      (any method; brvsr = VSR)
  upscale ORDER --run RUN --method M -> OUT/   the SR views in SCENE's own layout, intrinsics scaled
  eval OUT --reference HR_SCENE               per-view PSNR/SSIM and multi-view consistency

Each output folder is written whole in a temp folder beside it and moved in place at the end; an
existing one is replaced only with --overwrite and only if stdo-views wrote it (a marker file).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import torch

from stdo.errors import StdoError
from stdo.grid import parse_grid
from stdo.options import CommaList, Parsed, flag
from stdo.upscale.pipeline import UPSCALE_BACKENDS
from stdo.views.order import SIMILARITIES, STRATEGIES
from stdo.fileio import JSONUnreadable, read_json, save_npy, staged_dir, write_bytes, write_json
from stdo.metrics import psnr, ssim
from stdo.rundir import fingerprint, open_run
from stdo.resample import as_nchw, upscale_bicubic
from stdo.views import geometry, order as ordering, scene as scenes, synth
from stdo.progress import StageProgress

VIEW_SIZE = Parsed(parse_grid, lambda size: f"{size[0]}x{size[1]}", "size")  # WxH, read as a grid's COLSxROWS

log = logging.getLogger(__name__)
MARKER = ".stdo-views"
SEQUENCES = "sequences.json"
FRAMES = "frames"


def _claim(out: Path, overwrite: bool) -> None:
    """Refuse to replace a folder stdo-views did not write, or any without --overwrite."""
    if out.exists():
        if not overwrite:
            raise StdoError(f"{out} exists: give another folder, or `overwrite` to replace it")
        if not (out / MARKER).is_file():
            raise StdoError(f"{out} was not written by stdo-views (no {MARKER}): give another folder; "
                            "--overwrite replaces only folders stdo-views wrote")


def _mark(tmp: Path, what: str) -> None:
    """Say in the folder that stdo-views wrote it (what --overwrite checks)."""
    (tmp / MARKER).write_text(f"{what} written by stdo-views; --overwrite may replace this folder\n")


# ------------------------------------------------------------------------------------------------ synth

@dataclass
class SynthOptions:
    out: Path
    path: str = flag("orbit", "orbit: a circle around the room's centre, looking at it; walk: a smooth random walk.",
                     type=click.Choice(["orbit", "walk"]))
    views: int = flag(48, "Training views.")
    test_views: int = flag(0, "Test views on the same path.")
    size: tuple[int, int] = flag((256, 192), "HR view size, WxH.", type=VIEW_SIZE, metavar="WxH")
    fov: float = flag(70.0, "Horizontal field of view, degrees.")
    seed: int = flag(0, "Seed of the random walk.")
    overwrite: bool = flag(False, "Replace OUT if stdo-views wrote it.")


def make_synthetic(o: SynthOptions, progress: StageProgress = None) -> dict:
    """A room of real photos seen along a camera path, in the NeRF layout with exact depth per view."""
    if o.path not in ("orbit", "walk"):
        raise StdoError(f"unknown camera path {o.path!r}: use orbit or walk")
    if o.views < 2:
        raise StdoError(f"`views` {o.views} is below 2: give 2 or more views")
    width, height = o.size
    if width < 8 or height < 8:
        raise StdoError(f"`size` {width}x{height} is too small: give 8x8 or more")
    out = Path(o.out)
    _claim(out, o.overwrite)
    room = synth.room_from_clips()
    total = o.views + o.test_views
    poses = synth.orbit_poses(total) if o.path == "orbit" else synth.walk_poses(total, seed=o.seed)
    test = set(range(0, total, max(1, total // o.test_views))[: o.test_views]) if o.test_views else set()
    splits = {"train": [i for i in range(total) if i not in test], "test": sorted(test)}
    angle = np.radians(o.fov)
    k = geometry.intrinsics(*(2 * [geometry.focal_from_fov(width, angle)]), width / 2, height / 2)
    with staged_dir(out) as tmp:
        for split, indices in splits.items():
            if not indices:
                continue
            frames = []
            for n, i in enumerate(indices):
                rgb, depth, _ = synth.render(room, k, poses[i], width, height)
                name = f"{split}/r_{n:03d}"
                (tmp / split).mkdir(exist_ok=True)
                write_bytes(tmp / f"{name}.png", scenes.png_bytes(rgb))
                save_npy(tmp / f"{name}.depth.npy", depth)
                frames.append({"file_path": f"./{name}", "depth_path": f"{name}.depth.npy", "path_index": i,
                               "transform_matrix": geometry.opengl_to_opencv(poses[i]).tolist()})  # the same flip back to OpenGL
                if progress:
                    progress("render", 1, total)
            write_json(tmp / f"transforms_{split}.json", {"camera_angle_x": float(angle), "frames": frames})
        _mark(tmp, "a synthetic scene")
    return {"out": str(out), "views": o.views, "test_views": o.test_views, "path": o.path, "size": [width, height]}


# ------------------------------------------------------------------------------------------------ order

@dataclass
class OrderOptions:
    scene: Path
    out: Path
    strategy: str = flag("s", "s: one greedy chain cut into sequences; als: adaptive-length chains from every view.",
                         type=click.Choice(STRATEGIES))
    similarity: str = flag("feature", "What orders the chain: camera-centre angle (pose) or ORB match distance "
                           "(feature).", type=click.Choice(SIMILARITIES))
    length: int | None = flag(None, "Views per sequence [default: 100 for s, 8 for als].", type=int)
    thresholds: tuple[float, ...] | None = flag(None, "ALS thresholds, strictest first, comma-separated.",
                                                type=CommaList(item=float, example="30,50,100"))
    random: int | None = flag(None, "A random order instead (the control), cut as S.", type=int, metavar="SEED")
    split: str = flag("train", "NeRF scenes: the transforms_<split>.json to read.")
    write_mp4: bool = flag(False, "Also write each sequence as an .mp4 (H.264 CRF 16), for viewing.")
    overwrite: bool = flag(False, "Replace OUT if stdo-views wrote it.")


def order_scene(o: OrderOptions, progress: StageProgress = None) -> dict:
    views = scenes.read_views(Path(o.scene), o.split)
    out = Path(o.out)
    _claim(out, o.overwrite)
    images = [views.image(i) for i in range(len(views))]
    t0 = time.perf_counter()
    if o.random is not None:
        sequences = ordering.random_sequences(len(views), o.length or ordering.default_length("s"), o.random)
        used = {"length": min(o.length or ordering.default_length("s"), len(views)), "seed": o.random}
    else:
        sequences, used = ordering.order_views(o.strategy, o.similarity, views.centres(), images, o.length,
                                               o.thresholds)
    seconds = time.perf_counter() - t0
    kept = sorted(v for s in sequences for v, k in zip(s.views, s.keep) if k)
    if kept != list(range(len(views))):
        raise StdoError("the ordering did not write every view exactly once (a bug): report it with the scene")
    with staged_dir(out) as tmp:
        first = 0
        entries = []
        for n, seq in enumerate(sequences):
            for k, v in enumerate(seq.views):
                (tmp / FRAMES).mkdir(exist_ok=True)
                write_bytes(tmp / FRAMES / f"{first + k:05d}.png", scenes.png_bytes(images[v]))
            if o.write_mp4:
                _write_video(tmp / f"seq{n:03d}.mp4", [images[v] for v in seq.views])
            entries.append({**seq.to_dict(views.names), "first_frame": first})
            first += len(seq.views)
            if progress:
                progress("write", 1, len(sequences))
        record = {"scene": str(Path(o.scene).resolve()), "layout": views.layout, "split": o.split,
                  "strategy": "random" if o.random is not None else o.strategy,
                  "similarity": None if o.random is not None else o.similarity, **used,
                  "views": len(views), "frames": first, "order_seconds": seconds, "sequences": entries}
        write_json(tmp / SEQUENCES, record)
        _mark(tmp, "ordered sequences")
    return record


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    from stdo.stream import StreamOptions, StreamWriter

    h, w = frames[0].shape[:2]
    frames = [f[: h - h % 2, : w - w % 2] for f in frames]  # 4:2:0 needs even sizes
    with StreamWriter(path, 10.0, StreamOptions(codec="h264", crf=16, preset="veryfast")) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))


def read_order(folder: Path) -> dict:
    path = Path(folder) / SEQUENCES
    try:
        record = read_json(path)
        record["sequences"][0]["views"]
    except FileNotFoundError:
        raise StdoError(f"{path} does not exist: give a folder written by stdo-views order") from None
    except (JSONUnreadable, KeyError, IndexError, TypeError):
        raise StdoError(f"{path} is malformed: rerun stdo-views order") from None
    return record


# ------------------------------------------------------------------------------------------------ upscale

@dataclass
class UpscaleViewsOptions:
    order: Path
    run: Path
    out: Path
    method: str = flag("bicubic", "bicubic, or a method trained on the RUN (stdo, awdnn, jstdo, brvsr, ...).")
    models_from: Path | None = flag(None, "Use METHOD as trained on this other RUN (one-model methods: a VSR trained "
                                    "on videos, as SequenceMatters uses a pretrained one) [default: the --run's own].",
                                    type=click.Path(path_type=Path))
    backend: str = flag("torch", "torch runs the trained weights; onnxruntime runs them exported to ONNX here.",
                        type=click.Choice(UPSCALE_BACKENDS))
    batch: int = 4
    overwrite: bool = flag(False, "Replace OUT if stdo-views wrote it.")


@torch.no_grad()
def upscale_views(o: UpscaleViewsOptions, progress: StageProgress = None) -> dict:
    """SR views from a RUN made of ORDER/frames: the method runs over each sequence on its own (a video model's
    recurrence never crosses sequences) and each view keeps the output its sequence marks as kept."""
    from stdo.train.methods import load_trained
    from stdo.upscale.pipeline import sr_frames

    record = read_order(o.order)
    views = scenes.read_views(Path(record["scene"]), record["split"])
    run = open_run(o.run)
    if run.info["source"].get("sha256") != fingerprint(Path(o.order) / FRAMES):
        raise StdoError(f"{run} was not made from {Path(o.order) / FRAMES}: run stdo-cluster on that frame folder "
                        "(with --lossless) and train on it")
    out = Path(o.out)
    _claim(out, o.overwrite)
    lr, grid, scale = run.lr, run.grid, run.scale
    if len(lr) != record["frames"]:
        raise StdoError(f"{run} has {len(lr)} frames, the ordering {record['frames']}: cluster all of ORDER/frames "
                        "(no --start, --frames or --crop)")
    if o.method == "bicubic":
        models, model_map = None, None
    else:
        source = open_run(o.models_from) if o.models_from is not None else run
        models, model_map, trained = load_trained(source.trained(o.method))
        if o.models_from is not None:
            if len(models) > 1:
                raise StdoError(f"{o.method} has {len(models)} models and a model map of {source}'s patches: train "
                                f"it on {run} instead of using --models-from")
            if int(trained.get("scale", scale)) != scale:
                raise StdoError(f"{source} is x{trained.get('scale')}, {run} is x{scale}: give models of the same scale")
            model_map = np.zeros((len(lr), grid.rows, grid.cols), np.uint8)
    index = {name: i for i, name in enumerate(views.names)}
    outputs: list[np.ndarray | None] = [None] * len(views)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stdo-views-") as work:
        for seq in record["sequences"]:
            a, b = seq["first_frame"], seq["first_frame"] + len(seq["views"])
            if models is None:
                frames = ((i, upscale_bicubic(lr[a + i : min(b, a + i + o.batch)], scale))
                          for i in range(0, b - a, o.batch))
            else:
                frames = sr_frames(o.method, models, model_map[a:b], lr[a:b], grid, scale, o.backend, o.batch, None,
                                   Path(work))
            for i, sr in frames:
                for k in range(len(sr)):
                    if seq["keep"][i + k]:
                        outputs[index[seq["views"][i + k]]] = (sr[k].clamp(0, 255).round().to(torch.uint8)
                                                               .permute(1, 2, 0).numpy())
            if progress:
                progress("upscale", 1, len(record["sequences"]))
    seconds = time.perf_counter() - t0
    missing = [views.names[i] for i, x in enumerate(outputs) if x is None]
    if missing:
        raise StdoError(f"no kept output for {missing[0]} ({len(missing)} views): rerun stdo-views order")
    with staged_dir(out) as tmp:
        depth = None
        if views.depth is not None and (outputs[0].shape[1], outputs[0].shape[0]) == views.size:
            depth = [np.load(p) for p in views.depth]  # the scene's own depth still fits views of its size
        scenes.write_views(views, outputs, tmp, depth=depth)
        report = {"method": o.method, "run": str(run), "models_from": str(o.models_from) if o.models_from else None,
                  "order": str(Path(o.order).resolve()), "scale": scale,
                  "views": len(views), "strategy": record["strategy"], "similarity": record["similarity"],
                  "seconds": seconds, "size": [int(outputs[0].shape[1]), int(outputs[0].shape[0])]}
        write_json(tmp / "upscale.json", report)
        _mark(tmp, "super-resolved views")
    return report


# ------------------------------------------------------------------------------------------------ eval

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
    depths = [np.load(p) for p in ref.depth]
    figures = {"views": [], "reference": []}
    for n, (i, j) in enumerate(pairs):
        for key, images in (("views", sr_images), ("reference", ref_images)):
            warped, valid = geometry.warp_into(images[i].astype(np.float32), depths[i], ref.intrinsics[i],
                                               ref.poses[i], depths[j], ref.intrinsics[j], ref.poses[j])
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
