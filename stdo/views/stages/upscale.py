"""stdo-views upscale: an ordered scene's sequences upscaled by a trained RUN, back in the scene's own layout."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import torch

from stdo.errors import StdoError
from stdo.options import flag
from stdo.upscale.pipeline import UPSCALE_BACKENDS, Execution
from stdo.fileio import staged_dir, write_json
from stdo.rundir import fingerprint, open_run
from stdo.resample import upscale_bicubic
from stdo.views import scene as scenes
from stdo.progress import StageProgress
from stdo.views.stages import FRAMES, claim, mark, read_order


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
                        "(with `lossless=True`) and train on it")
    out = Path(o.out)
    claim(out, o.overwrite)
    lr, grid, scale = run.lr, run.grid, run.scale
    if len(lr) != record["frames"]:
        raise StdoError(f"{run} has {len(lr)} frames, the ordering {record['frames']}: cluster all of ORDER/frames "
                        "(no `start`, `frames` or `crop`)")
    if o.method == "bicubic":
        models, model_map = None, None
    else:
        source = open_run(o.models_from) if o.models_from is not None else run
        models, model_map, trained = load_trained(source.trained(o.method))
        if o.models_from is not None:
            if len(models) > 1:
                raise StdoError(f"{o.method} has {len(models)} models and a model map of {source}'s patches: train "
                                f"it on {run} instead of using `models_from`")
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
                frames = sr_frames(o.method, models, model_map[a:b], lr[a:b], grid, scale,
                                   Execution(o.backend, o.batch, None, Path(work)))
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
        mark(tmp, "super-resolved views")
    return report
