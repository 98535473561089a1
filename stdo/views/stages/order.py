"""stdo-views order: a scene's views ordered into sequences (a frame folder stdo-cluster reads, and videos)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from stdo.errors import StdoError
from stdo.options import CommaList, flag
from stdo.views.order import SIMILARITIES, STRATEGIES
from stdo.fileio import staged_dir, write_bytes, write_json
from stdo.views import order as ordering, scene as scenes
from stdo.progress import StageProgress
from stdo.views.stages import FRAMES, SEQUENCES, claim, mark


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
    claim(out, o.overwrite)
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
        mark(tmp, "ordered sequences")
    return record


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    from stdo.stream import StreamOptions, StreamWriter

    h, w = frames[0].shape[:2]
    frames = [f[: h - h % 2, : w - w % 2] for f in frames]  # 4:2:0 needs even sizes
    with StreamWriter(path, 10.0, StreamOptions(codec="h264", crf=16, preset="veryfast")) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
