"""Multi-view image sets on disk: NeRF-synthetic (transforms_<split>.json), COLMAP (sparse/0, text or binary, read
with pycolmap) and a plain folder of images (no poses). Read into one ViewSet, and written back in the same
layout with new images at another resolution (intrinsics scaled), ready for a 3DGS/NeRF trainer.

NeRF layout as Blender-synthetic: camera_angle_x (radians), frames[i].file_path (relative, without
extension: ".png" is added) and transform_matrix (camera-to-world, OpenGL axes). Optional keys
w, h, fl_x, fl_y, cx, cy are honoured and scaled; synthetic scenes add frames[i].depth_path (z-depth,
float32 .npy at the views' resolution).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from stdo.errors import StdoError
from stdo.fileio import read_json, save_npy, write_bytes, write_json
from stdo.views.geometry import focal_from_fov, intrinsics, opengl_to_opencv

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LAYOUTS = ("nerf", "colmap", "images")


@dataclass
class ViewSet:
    root: Path
    layout: str  # one of LAYOUTS
    names: list[str]  # each view's image path relative to root, as the layout's files name it
    size: tuple[int, int]  # (width, height), the same for every view
    poses: np.ndarray | None = None  # [N, 4, 4] camera-to-world, OpenCV axes
    intrinsics: np.ndarray | None = None  # [N, 3, 3]
    depth: list[Path] | None = None  # z-depth maps (.npy), synthetic scenes
    split: str = "train"  # nerf: the transforms file the views come from
    extra: dict = field(default_factory=dict)  # layout details a writer needs

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, i: int) -> Path:
        return self.root / self.names[i]

    def image(self, i: int) -> np.ndarray:
        """View i as uint8 [H, W, 3]."""
        return _load_rgb(self.image_path(i))

    def centres(self) -> np.ndarray | None:
        return None if self.poses is None else self.poses[:, :3, 3]


def read_views(path: Path, split: str = "train") -> ViewSet:
    """The view set at `path`: a NeRF scene folder, a COLMAP project folder (images/ + sparse/[0/]) or an image folder."""
    path = Path(path)
    if not path.exists():
        raise StdoError(f"{path} does not exist: give a NeRF scene, a COLMAP project or a folder of images")
    if path.is_file():
        raise StdoError(f"{path} is a file: give the scene's folder (transforms_*.json, sparse/ or images)")
    if list(path.glob("transforms_*.json")):
        views = _read_nerf(path, split)
    elif _colmap_model_dir(path) is not None:
        views = _read_colmap(path)
    else:
        names = sorted(p.name for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        views = ViewSet(path, "images", names, (0, 0))
    if len(views) < 2:
        raise StdoError(f"{path} has {len(views)} view(s): ordering and consistency need 2 or more")
    views.size = _common_size(views)
    return views


def _read_nerf(root: Path, split: str) -> ViewSet:
    path = root / f"transforms_{split}.json"
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in root.glob("transforms_*.json")))
        raise StdoError(f"{path} does not exist (found {found}): pick the split with `split`")
    try:
        meta = read_json(path)
        frames = meta["frames"]
        angle = float(meta["camera_angle_x"]) if "fl_x" not in meta else None
        names, poses, depth = [], [], []
        for frame in frames:
            name = frame["file_path"].removeprefix("./")
            names.append(name if Path(name).suffix.lower() in IMAGE_SUFFIXES else name + ".png")
            pose = np.array(frame["transform_matrix"], dtype=np.float64)
            if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
                raise ValueError("a transform_matrix is not a finite 4x4 matrix")
            poses.append(opengl_to_opencv(pose))
            depth.append(frame.get("depth_path"))
    except (KeyError, TypeError, ValueError) as e:  # JSONUnreadable is a ValueError
        raise StdoError(f"{path} is malformed ({e.__class__.__name__}: {str(e)[:100]}): it needs camera_angle_x and "
                        "frames with file_path and a 4x4 transform_matrix") from None
    views = ViewSet(root, "nerf", names, (0, 0), poses=np.stack(poses) if poses else None, split=split,
                    extra={"meta": meta})
    width, height = _common_size(views)
    fx = float(meta["fl_x"]) if angle is None else focal_from_fov(width, angle)
    fy = float(meta.get("fl_y", fx))
    # NeRF's rays are (i - W/2) / focal for pixel index i: the principal point is W/2, H/2 unless given
    k = intrinsics(fx, fy, float(meta.get("cx", width / 2)), float(meta.get("cy", height / 2)))
    views.intrinsics = np.repeat(k[None], len(names), axis=0)
    if all(d is not None for d in depth) and depth:
        views.depth = [root / d for d in depth]
    return views


def _colmap_model_dir(root: Path) -> Path | None:
    for folder in (root / "sparse" / "0", root / "sparse"):
        if any((folder / f"cameras.{ext}").is_file() for ext in ("bin", "txt")):
            return folder
    return None


def _read_colmap(root: Path) -> ViewSet:
    try:
        import pycolmap
    except ImportError:
        raise StdoError("reading a COLMAP model needs pycolmap: pip install 'stdo[views]'") from None
    model_dir = _colmap_model_dir(root)
    try:
        model = pycolmap.Reconstruction(str(model_dir))
    except Exception as e:  # noqa: BLE001 - pycolmap raises plain exceptions for any malformed file
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:150]
        raise StdoError(f"{model_dir} is not a readable COLMAP model ({first}): give cameras, images and "
                        "points3D in COLMAP's text or binary format") from None
    images = sorted(model.images.values(), key=lambda im: im.name)
    names, poses, ks = [], [], []
    for image in images:
        names.append(f"images/{image.name}")
        world_from_cam = image.cam_from_world().inverse().matrix()  # 3x4
        pose = np.eye(4)
        pose[:3, :] = world_from_cam
        poses.append(pose)
        k = np.array(model.cameras[image.camera_id].calibration_matrix(), dtype=np.float64)
        k[:2, 2] -= 0.5  # COLMAP's pixel centres are at +0.5; here at whole indices
        ks.append(k)
    return ViewSet(root, "colmap", names, (0, 0), poses=np.stack(poses) if poses else None,
                   intrinsics=np.stack(ks) if ks else None, extra={"model_dir": model_dir})


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """A view's image, open; a missing or unreadable file is one StdoError naming it."""
    try:
        with Image.open(path) as im:
            yield im
    except FileNotFoundError:
        raise StdoError(f"view {path} does not exist: fix the scene's file list or add the image") from None
    except (UnidentifiedImageError, OSError) as e:
        raise StdoError(f"view {path} is not a readable image ({e.__class__.__name__}): replace it") from None


def _load_rgb(path: Path) -> np.ndarray:
    with _opened(path) as im:
        return np.asarray(im.convert("RGB"))


def _common_size(views: ViewSet) -> tuple[int, int]:
    sizes = {}
    for i in range(len(views)):
        with _opened(views.image_path(i)) as im:
            sizes.setdefault(im.size, views.names[i])
    if len(sizes) > 1:
        (a, first), (b, second) = list(sizes.items())[:2]
        raise StdoError(f"views of different sizes ({first} is {a[0]}x{a[1]}, {second} is {b[0]}x{b[1]}): "
                        "give views of one size")
    return next(iter(sizes)) if sizes else (0, 0)


def write_views(views: ViewSet, images: list[np.ndarray], out: Path, depth: list[np.ndarray] | None = None) -> None:
    """Write `images` (one per view, all of one size) as a copy of `views` in its own layout at `out`, with the
    intrinsics scaled to the new size. Other NeRF splits are copied as they are. Every file is written
    atomically; `out` must not be the scene's own folder."""
    out = Path(out)
    if out.resolve() == views.root.resolve():
        raise StdoError(f"{out} is the scene itself: write the new views to another folder")
    height, width = images[0].shape[:2]
    factor = width / views.size[0]
    if abs(height / views.size[1] - factor) > 1e-9:
        raise StdoError("the new views do not keep the aspect ratio: give a whole scale factor")
    for name, image in zip(views.names, images):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, png_bytes(image))
    if views.layout == "nerf":
        _write_nerf(views, out, factor, depth)
    elif views.layout == "colmap":
        _write_colmap(views, out, factor)


def png_bytes(image: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_nerf(views: ViewSet, out: Path, factor: float, depth: list[np.ndarray] | None) -> None:
    meta = json.loads(json.dumps(views.extra["meta"]))
    for key in ("w", "h", "fl_x", "fl_y"):
        if key in meta:
            meta[key] = meta[key] * factor
    for key in ("cx", "cy"):
        if key in meta:
            meta[key] = (meta[key] + 0.5) * factor - 0.5
    for i, frame in enumerate(meta["frames"]):
        frame["file_path"] = "./" + str(Path(views.names[i]).with_suffix(""))
        if depth is not None:
            frame["depth_path"] = str(Path(views.names[i]).with_suffix(".depth.npy"))
            save_npy(out / frame["depth_path"], depth[i].astype(np.float32))
        else:
            frame.pop("depth_path", None)
    write_json(out / f"transforms_{views.split}.json", meta)
    for other in views.root.glob("transforms_*.json"):  # the other splits (test views stay as they are)
        if other.name == f"transforms_{views.split}.json" or (out / other.name).exists():
            continue
        shutil.copy2(other, out / other.name)
        for frame in read_json(other).get("frames", []):
            name = frame["file_path"].removeprefix("./")
            source = views.root / (name if Path(name).suffix else name + ".png")
            if source.is_file():
                (out / source.relative_to(views.root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, out / source.relative_to(views.root))


def _write_colmap(views: ViewSet, out: Path, factor: float) -> None:
    import pycolmap

    model = pycolmap.Reconstruction(str(views.extra["model_dir"]))
    for camera in model.cameras.values():
        camera.rescale(factor)
    for image in model.images.values():
        for point in image.points2D:
            point.xy = np.asarray(point.xy) * factor  # COLMAP: the image spans [0, W], pixel centres at +0.5
    target = out / "sparse" / "0"
    target.mkdir(parents=True, exist_ok=True)
    model.write(str(target))

