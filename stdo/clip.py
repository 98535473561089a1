"""A clip: the HR frames a RUN is made from and the LR frames a client receives for them.

The policy between reading and training: which source kinds there are (a video, a frame folder, a
VSD4K folder, and an LR video given beside any of them), the HR rectangle kept (a crop cut to a
multiple of the scale), where the LR frames come from (given, or bicubic), and the LR stream a
client decodes (`ship_lr_stream`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stdo.errors import StdoError
from stdo.options import Parsed
from stdo.progress import CountProgress
from stdo.resample import downscale_bicubic
from stdo.stream import StreamOptions, encode_stream
from stdo.video import (Allocator, open_video, frame_range, frame_size, in_memory, list_frame_files,
                        read_images)

VSD4K_HR = "DIV2K_train_HR"
VSD4K_LR = "DIV2K_train_LR_bicubic"


@dataclass(frozen=True)
class Crop:
    """A rectangle in HR pixels: `WxH+X+Y`, as ffmpeg and ImageMagick write it."""

    width: int
    height: int
    x: int = 0
    y: int = 0

    @classmethod
    def parse(cls, text: str) -> "Crop":
        m = re.fullmatch(r"\s*(\d+)x(\d+)(?:\+(\d+)\+(\d+))?\s*", text)
        if not m:
            raise StdoError(f"crop {text!r} is not WxH+X+Y: write it like 640x360+0+0")
        w, h, x, y = (int(g) if g else 0 for g in m.groups())
        if w == 0 or h == 0:
            raise StdoError(f"crop {text!r} is empty: give a width and height above 0")
        return cls(w, h, x, y)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}+{self.x}+{self.y}"


CROP = Parsed(Crop.parse, str, "crop")  # the command-line type of a crop


@dataclass(frozen=True)
class Cut:
    """The part of a source a RUN is made from: `frames` frames from frame `start` (None: to the end), inside
    `crop` (None: the whole frame). Its field names are stdo-cluster's option fields."""

    start: int = 0
    frames: int | None = None
    crop: Crop | None = None

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.frames is None and self.crop is None


@dataclass
class Clip:
    """HR frames and the LR frames a client receives for them (HR size = scale × LR size)."""

    hr: np.ndarray
    lr: np.ndarray  # before the LR stream is encoded (see ship_lr_stream)
    fps: float
    lr_origin: str  # "given" or "bicubic"
    lr_video: Path | None = None  # a given LR video used whole and uncut: its bitstream is shipped as it is


def vsd4k_dirs(folder: Path, scale: int) -> tuple[Path, Path] | None:
    """(HR dir, LR dir) when `folder` has the VSD4K layout, else None."""
    hr_dir = folder / VSD4K_HR
    if not hr_dir.is_dir():
        return None
    lr_dir = folder / VSD4K_LR / f"X{scale}"
    if not lr_dir.is_dir():
        raise StdoError(f"{folder} has {VSD4K_HR} but no {VSD4K_LR}/X{scale}: give a `scale` that the data set has")
    return hr_dir, lr_dir


def _vsd4k_pairs(hr_dir: Path, lr_dir: Path, scale: int) -> tuple[list[Path], list[Path]]:
    """Pair HR frames with LR frames named 00001x2.png or 00001_x2.png."""
    hr_files = list_frame_files(hr_dir)
    lr_by_stem = {}
    for p in list_frame_files(lr_dir):
        stem = re.sub(rf"_?[xX]{scale}$", "", p.stem)
        lr_by_stem[stem] = p
    if len(lr_by_stem) != len(hr_files):
        raise StdoError(
            f"{hr_dir} has {len(hr_files)} frames but {lr_dir} has {len(lr_by_stem)}: HR and LR must match one to one"
        )
    missing = [p.name for p in hr_files if p.stem not in lr_by_stem]
    if missing:
        raise StdoError(f"{lr_dir} has no LR frame for {missing[0]}: expected a name like {Path(missing[0]).stem}x{scale}.png")
    return hr_files, [lr_by_stem[p.stem] for p in hr_files]


def _source_reader(source: Path, scale: int) -> tuple[str, list[Path] | None, list[Path] | None]:
    """('video', None, None) | ('folder', files, None) | ('vsd4k', hr files, lr files)."""
    if not source.exists():
        raise StdoError(f"{source} does not exist: give a video file or a folder of frames")
    if source.is_file():
        return "video", None, None
    dirs = vsd4k_dirs(source, scale)
    if dirs:
        hr, lr = _vsd4k_pairs(*dirs, scale)
        return "vsd4k", hr, lr
    return "folder", list_frame_files(source), None


def source_kind(source: Path, scale: int) -> str:
    return _source_reader(source, scale)[0]


def _hr_box(width: int, height: int, scale: int, crop: Crop | None, lr_given: bool,
            unit: int) -> tuple[int, int, int, int]:
    """The HR rectangle to keep: the crop (or the frame) shrunk to a multiple of `unit` (the scale, or
    twice the scale when the LR stream is 4:2:0 and so needs even LR sizes)."""
    x, y, w, h = (crop.x, crop.y, crop.width, crop.height) if crop else (0, 0, width, height)
    if x + w > width or y + h > height:
        raise StdoError(f"crop {crop} reaches outside the {width}x{height} frame: make it fit")
    if lr_given and (x % scale or y % scale):
        raise StdoError(f"crop offset +{x}+{y} is not a multiple of x{scale}: the given LR frames cannot be cropped to match")
    w, h = w - w % unit, h - h % unit
    if w == 0 or h == 0:
        raise StdoError(f"a {width}x{height} frame is smaller than {unit}x{unit} (x{scale}"
                        f"{', 4:2:0 LR' if unit > scale else ''}): give a larger frame or crop")
    return x, y, w, h


def load_clip(
    source: Path,
    scale: int,
    cut: Cut = Cut(),
    lr_source: Path | None = None,
    stream: StreamOptions | None = None,
    progress: CountProgress = None,
    allocate: Allocator | None = None,
) -> Clip:
    """Read HR frames and their LR counterpart from a video, a frame folder or a VSD4K folder.

    `allocate` gives the arrays the frames go into, by name ("hr", "lr"): memory-mapped files keep a
    long clip out of RAM.

    LR comes from `lr_source`, the VSD4K LR folder, or is synthesized (bicubic with antialias).
    These are the frames before the LR stream (`ship_lr_stream`); `stream` (None: the default
    stream) only decides the sizes: a 4:2:0 stream needs even LR sizes, so the HR box is cut to
    a multiple of twice the scale. A given LR video used whole (no start, frames or crop) is
    kept as it is (`Clip.lr_video`), and then `stream` must be None.
    """
    if scale < 2:
        raise StdoError(f"`scale` {scale} is below 2: super-resolution needs a scale of 2 or more")
    source = Path(source)
    kind, hr_files, lr_files = _source_reader(source, scale)
    if lr_source is not None and kind == "vsd4k":
        raise StdoError(f"{source} is a VSD4K folder that has its own LR frames: drop `lr_video`")
    lr_given = lr_source is not None or lr_files is not None
    keep_lr_video = lr_source is not None and Path(lr_source).is_file() and cut.whole
    if keep_lr_video and stream is not None:
        raise StdoError(f"`lr_video` {lr_source} is shipped as it is: drop `codec`, `crf`, `bitrate`, `preset`, `gop` "
                        "and `lossless`, or cut it with `start`, `frames` or `crop` to re-encode it")
    stream = stream or StreamOptions()
    start, count = cut.start, cut.frames
    with open_video(source) if hr_files is None else contextlib.nullcontext() as reader:
        width, height = (reader.info.width, reader.info.height) if reader else frame_size(source, hr_files)
        unit = scale if keep_lr_video or not stream.chroma_subsampled else 2 * scale
        x, y, w, h = _hr_box(width, height, scale, cut.crop, lr_given, unit)

        fps = reader.info.fps if reader else 25.0
        allocate = allocate or in_memory
        hr_alloc: Allocator = lambda name, shape: allocate("hr", shape)  # noqa: E731
        lr_alloc: Allocator = lambda name, shape: allocate("lr", shape)  # noqa: E731
        if reader:
            hr = reader.read(start, count, (x, y, w, h), progress, hr_alloc)
    if hr_files is not None:
        files = [hr_files[i] for i in frame_range(len(hr_files), start, count, str(source))]
        hr = read_images(files, (x, y, w, h), progress, hr_alloc)

    lr_box = (x // scale, y // scale, w // scale, h // scale)
    if lr_files is not None:
        _check_lr_size(frame_size(source, lr_files), (width, height), scale, lr_files[0].parent)
        lr = read_images([lr_files[i] for i in range(start, start + len(hr))], lr_box, allocate=lr_alloc)
    elif lr_source is not None:
        lr = _read_lr_source(Path(lr_source), scale, range(start, start + len(hr)), lr_box, (width, height),
                             whole=keep_lr_video, allocate=lr_alloc)
    else:
        t, h_, w_, c = hr.shape
        return Clip(hr=hr, lr=downscale_bicubic(hr, scale, out=lr_alloc("lr", (t, h_ // scale, w_ // scale, c))),
                    fps=fps, lr_origin="bicubic")
    return Clip(hr=hr, lr=lr, fps=fps, lr_origin="given", lr_video=Path(lr_source) if keep_lr_video else None)


def ship_lr_stream(clip: Clip, path: Path, stream: StreamOptions | None = None,
                   allocate: Allocator | None = None) -> np.ndarray:
    """Write the LR stream a client receives to `path` and return its decoded RGB frames.

    A given LR video used whole is copied byte for byte, and its frames, already decoded by the
    same conversion, are returned as they are; otherwise the LR frames are encoded with `stream`
    (None: the default) and decoded back. The returned frames are what every later stage uses.
    """
    if clip.lr_video is not None:
        shutil.copyfile(clip.lr_video, path)
        return clip.lr
    encode_stream(path, clip.lr, clip.fps, stream or StreamOptions())
    lr = (allocate or in_memory)("lr_stream", clip.lr.shape)  # decoded frame by frame into place
    n = 0
    with open_video(path) as video:
        for frame in video.decode():
            if n >= len(lr) or frame.shape != lr.shape[1:]:
                n += 1
                break
            lr[n] = frame
            n += 1
    if n != len(lr):
        raise StdoError(f"the LR stream does not decode to the {clip.lr.shape[0]} frames of "
                        f"{clip.lr.shape[2]}x{clip.lr.shape[1]} it was made from: check the LR video")
    return lr


def _read_lr_source(
    lr_source: Path, scale: int, frames: range, box: tuple[int, int, int, int], hr_size: tuple[int, int],
    whole: bool = False, allocate: Allocator | None = None,
) -> np.ndarray:
    """The LR `frames` (those of the HR frames read) cropped to `box`; with `whole`, every frame of the video, which
    must then number as many. `hr_size`: the HR frames' (width, height)."""
    start, count = frames.start, len(frames)
    kind, files, _ = _source_reader(lr_source, scale)
    if kind == "vsd4k":
        raise StdoError(f"`lr_video` {lr_source} is a VSD4K folder: give it as SOURCE instead")
    if files is None:
        with open_video(lr_source) as reader:
            _check_lr_size((reader.info.width, reader.info.height), hr_size, scale, lr_source)
            lr = reader.read(start, None if whole else count, box, allocate=allocate)
    else:
        _check_lr_size(frame_size(lr_source, files), hr_size, scale, lr_source)
        lr = read_images(files[start : start + count], box, allocate=allocate)
    if len(lr) != count:
        raise StdoError(f"LR {lr_source} has {len(lr)} frames from `start` {start} but HR has {count}: give matching clips")
    return lr


def _check_lr_size(lr_size: tuple[int, int], hr_size: tuple[int, int], scale: int, where: Path) -> None:
    (lw, lh), (hw, hh) = lr_size, hr_size
    if (lw, lh) != (hw // scale, hh // scale):
        raise StdoError(
            f"LR {where} is {lw}x{lh} but HR {hw}x{hh} at x{scale} needs {hw // scale}x{hh // scale}: "
            "give LR frames made at this scale"
        )
