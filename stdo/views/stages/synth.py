"""stdo-views synth: a synthetic scene with exact geometry (poses, intrinsics, depth), in the views layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from stdo.errors import StdoError
from stdo.options import flag
from stdo.fileio import save_npy, staged_dir, write_bytes, write_json
from stdo.views import geometry, scene as scenes, synth
from stdo.progress import StageProgress
from stdo.views.stages import VIEW_SIZE, claim, mark


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
    claim(out, o.overwrite)
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
        mark(tmp, "a synthetic scene")
    return {"out": str(out), "views": o.views, "test_views": o.test_views, "path": o.path, "size": [width, height]}
