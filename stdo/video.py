"""Video input and output: decode files (PyAV) and frame folders, make the LR stream.

Frames are uint8 arrays T×H×W×3 (RGB). Every reader checks what it reads and raises
StdoError with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from stdo.errors import StdoError
from stdo.stream import StreamOptions, decode_stream, encode_stream, frame_to_rgb, open_video

log = logging.getLogger(__name__)

Progress = Callable[[int], None] | None
# (name, shape) -> a uint8 array to fill: in memory, or memory-mapped files so that a clip's frames never need
# to fit in RAM (stdo-cluster)
Allocator = Callable[[str, tuple[int, ...]], np.ndarray]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
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


@dataclass
class Clip:
    """HR frames and the LR frames a client receives for them (HR size = scale × LR size)."""

    hr: np.ndarray
    lr: np.ndarray  # before the LR stream is encoded (see ship_lr_stream)
    fps: float
    lr_origin: str  # "given" or "bicubic"
    lr_video: Path | None = None  # a given LR video used whole and uncut: its bitstream is shipped as it is


# ---------------------------------------------------------------------------- listing


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name))


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in numeric order (2.png before 10.png)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise StdoError(f"{folder} has no PNG or JPG frames: point at a folder of frames or a video file")
    return sorted(files, key=_natural_key)


def vsd4k_dirs(folder: Path, scale: int) -> tuple[Path, Path] | None:
    """(HR dir, LR dir) when `folder` has the VSD4K layout, else None."""
    hr_dir = folder / VSD4K_HR
    if not hr_dir.is_dir():
        return None
    lr_dir = folder / VSD4K_LR / f"X{scale}"
    if not lr_dir.is_dir():
        raise StdoError(f"{folder} has {VSD4K_HR} but no {VSD4K_LR}/X{scale}: give --scale that the data set has")
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


# ---------------------------------------------------------------------------- decoding


def _check_range(start: int, count: int | None) -> None:
    if start < 0:
        raise StdoError(f"--start {start} is negative: frames count from 0")
    if count is not None and count < 1:
        raise StdoError(f"--frames {count} asks for no frames: give 1 or more")


def _frame_range(total: int, start: int, count: int | None, what: str) -> range:
    _check_range(start, count)
    if start >= total:
        raise StdoError(f"{what} has {total} frames: --start {start} is past its end")
    stop = total if count is None else min(total, start + count)
    return range(start, stop)


def _crop_array(frame: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    if box is None:
        return frame
    x, y, w, h = box
    return frame[y : y + h, x : x + w]


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frames: int  # as the container declares it; 0 when it does not say (VideoReader.count decodes to know)
    fps: float


class VideoReader:
    """A video file opened once, as PyAV users know it: `.info`, then `.frames(start, count, box)`.

    A context manager (closing the container). Decoding goes forward from the start: a second decode (after
    `count` had to decode a container that does not declare its length) opens the file again."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._open()
        codec = self._stream.codec_context
        self.info = VideoInfo(codec.width, codec.height, int(self._stream.frames or 0),
                              float(self._stream.average_rate or self._stream.guessed_rate or 25))
        self._counted: int | None = None

    def _open(self) -> None:
        self._container = open_video(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._decoding = False

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _decode(self) -> Iterator:
        if self._decoding:  # decoded before: from the start again
            self.close()
            self._open()
        self._decoding = True
        return self._container.decode(self._stream)

    def count(self) -> int:
        """The number of frames: declared, or counted by decoding (no conversion)."""
        if self.info.frames:
            return self.info.frames
        if self._counted is None:
            try:
                self._counted = sum(1 for _ in self._decode())
            except av.error.FFmpegError as e:
                raise StdoError(f"{self.path} is corrupt or truncated ({e.strerror or e}): re-encode or re-download "
                                "it") from None
        return self._counted

    def frames(self, start: int = 0, count: int | None = None, box: tuple[int, int, int, int] | None = None,
               progress: Progress = None, allocate: Allocator | None = None) -> np.ndarray:
        """Decode frames [start, start+count) cropped to box=(x, y, w, h), uint8 [T, H, W, 3].

        With `allocate` (e.g. memory-mapped files) the frames go straight into the array it gives, whose length
        must be known first: a container that does not declare it is counted by a decoding pass."""
        path = self.path
        declared = self.info.frames or (self.count() if allocate is not None else 0)
        if declared:
            wanted = _frame_range(declared, start, count, str(path))
        else:  # the container does not say: decode until the stream ends
            _check_range(start, count)
            wanted = range(start, start + count if count is not None else sys.maxsize)
        # Fill one preallocated array when the length is known (no 2x copy at the end).
        out: np.ndarray | None = None
        frames: list[np.ndarray] = []
        index, n = -1, 0
        try:
            for frame in self._decode():
                index += 1
                if index < wanted.start:
                    continue
                if index >= wanted.stop:
                    break
                image = _crop_array(frame_to_rgb(frame), box)
                if declared:
                    if out is None:
                        out = (allocate or in_memory)("frames", (len(wanted),) + image.shape)
                    out[n] = image
                else:
                    frames.append(image.copy())
                n += 1
                if progress:
                    progress(1)
        except av.error.FFmpegError as e:
            raise StdoError(f"{path} is corrupt or truncated at frame {index + 1} ({e.strerror or e}): re-encode or "
                            "re-download it") from None
        if n == 0:
            raise StdoError(f"{path} has {index + 1} decodable frames: --start {start} is past its end or the file "
                            "is truncated")
        if declared and n < len(wanted):
            raise StdoError(f"{path} ends after {index + 1} of its {declared} frames: the file is truncated, "
                            "re-download or re-encode it")
        return out if out is not None else np.stack(frames)


def probe_video(path: Path) -> tuple[int, int, int, float]:
    """(width, height, declared frame count or 0, fps) of a video file."""
    with VideoReader(path) as reader:
        i = reader.info
        return i.width, i.height, i.frames, i.fps


def in_memory(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The default Allocator: a plain uint8 array."""
    return np.empty(shape, np.uint8)


def read_video(path: Path, start: int = 0, count: int | None = None, box: tuple[int, int, int, int] | None = None,
               progress: Progress = None, allocate: Allocator | None = None) -> tuple[np.ndarray, float]:
    """Frames [start, start+count) of a video cropped to box, and its fps (VideoReader.frames, opened once)."""
    with VideoReader(path) as reader:
        return reader.frames(start, count, box, progress, allocate), reader.info.fps


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise StdoError(f"{path} is not a readable image ({e}): replace or remove it") from None


def read_images(
    files: Sequence[Path], box: tuple[int, int, int, int] | None = None, progress: Progress = None,
    allocate: Allocator | None = None,
) -> np.ndarray:
    """Read image files into T×H×W×3 uint8; all must have one size."""
    first = _read_image(files[0])
    out = (allocate or in_memory)("frames", (len(files),) + _crop_array(first, box).shape)
    for i, path in enumerate(files):
        image = first if i == 0 else _read_image(path)
        if image.shape != first.shape:
            raise StdoError(
                f"{path.name} is {image.shape[1]}x{image.shape[0]} but {files[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}: all frames must have one size"
            )
        out[i] = _crop_array(image, box)
        if progress:
            progress(1)
    return out


def iter_frames(source: Path) -> Iterator[np.ndarray]:
    """Frames one by one (uint8 [H, W, 3]) from a video file, a folder of PNG/JPG frames, or a .npy array [T, H, W, 3]."""
    source = Path(source)
    if source.is_dir():
        for path in list_frame_files(source):
            yield _read_image(path)
    elif source.suffix == ".npy":
        try:
            frames = np.load(source, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise StdoError(f"{source} is not a readable .npy array ({e.__class__.__name__})") from None
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise StdoError(f"{source} holds {frames.dtype} {frames.shape}, not uint8 frames [T, H, W, 3]")
        yield from frames
    else:
        yield from decode_stream(source)


def _frame_size(source: Path, files: Sequence[Path] | None) -> tuple[int, int]:
    if files is not None:
        h, w = _read_image(files[0]).shape[:2]
        return w, h
    w, h, _, _ = probe_video(source)
    return w, h


# ---------------------------------------------------------------------------- LR synthesis


def as_nchw(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> uint8 tensor [T, 3, H, W] (a view of contiguous, writable input;
    read-only input such as a memory-mapped RUN is copied, since torch tensors are always writable)."""
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:
        frames = frames.copy()
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def frames_per_batch(height: int, width: int, pixel_budget: int = 2_000_000) -> int:
    """How many frames of this size to process at once so float work buffers stay near pixel_budget·12 bytes."""
    return max(1, pixel_budget // (height * width))


def downscale_bicubic(frames: np.ndarray, scale: int, stripe_rows: int = 64, out: np.ndarray | None = None) -> np.ndarray:
    """Bicubic downscaling with antialias (the kernel stretched by `scale`, as MATLAB's imresize).

    Frames must be a multiple of `scale` in size. Works on stripes of `stripe_rows` LR rows
    (plus the 2·scale HR rows the stretched kernel reads on each side, rounded up) so that
    work buffers stay a few MB; the result equals whole-frame resizing.
    """
    t, h, w, c = frames.shape
    if h % scale or w % scale:
        raise StdoError(f"frames of {w}x{h} are not a multiple of x{scale}: crop them first")
    lh, lw = h // scale, w // scale
    context = 3  # LR rows of context: covers the kernel's 2·scale HR rows
    out = np.empty((t, lh, lw, c), np.uint8) if out is None else out
    batch = frames_per_batch((stripe_rows + 2 * context) * scale, w, pixel_budget=500_000)
    for i in range(0, t, batch):
        for j0 in range(0, lh, stripe_rows):
            j1 = min(j0 + stripe_rows, lh)
            a, b = max(j0 - context, 0), min(j1 + context, lh)
            x = as_nchw(frames[i : i + batch, a * scale : b * scale])
            y = F.interpolate(x.float(), size=(b - a, lw), mode="bicubic", antialias=True, align_corners=False)
            out[i : i + batch, j0:j1] = y[:, :, j0 - a : j1 - a].round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def upscale_bicubic(frames: np.ndarray, scale: int) -> torch.Tensor:
    """Bicubic upsampling of uint8 T×h×w×3 frames: float32 T×3×(h·s)×(w·s), rounded to 0..255 like a display.

    The cubic kernel has a = -0.5 as in MATLAB's imresize and PIL (torch's antialias path;
    its plain bicubic uses OpenCV's a = -0.75). Antialiasing itself does nothing when enlarging.
    """
    x = as_nchw(frames).float()
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255)


# ---------------------------------------------------------------------------- a clip


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
    lr_source: Path | None = None,
    start: int = 0,
    count: int | None = None,
    crop: Crop | None = None,
    stream: StreamOptions | None = None,
    progress: Progress = None,
    allocate: Allocator | None = None,
) -> Clip:
    """Read HR frames and their LR counterpart from a video, a frame folder or a VSD4K folder.

    `allocate` gives the arrays the frames go into, by name ("hr", "lr"): memory-mapped files keep a
    long clip out of RAM.

    LR comes from `lr_source`, the VSD4K LR folder, or is synthesized (bicubic with antialias).
    These are the frames before the LR stream (`ship_lr_stream`); `stream` (None: the default
    stream) only decides the sizes: a 4:2:0 stream needs even LR sizes, so the HR box is cut to
    a multiple of twice the scale. A given LR video used whole (no --start, --frames, --crop) is
    kept as it is (`Clip.lr_video`), and then `stream` must be None.
    """
    if scale < 2:
        raise StdoError(f"--scale {scale} is below 2: super-resolution needs a scale of 2 or more")
    source = Path(source)
    kind, hr_files, lr_files = _source_reader(source, scale)
    if lr_source is not None and kind == "vsd4k":
        raise StdoError(f"{source} is a VSD4K folder that has its own LR frames: drop --lr-video")
    lr_given = lr_source is not None or lr_files is not None
    keep_lr_video = (lr_source is not None and Path(lr_source).is_file() and start == 0 and count is None
                     and crop is None)
    if keep_lr_video and stream is not None:
        raise StdoError(f"--lr-video {lr_source} is shipped as it is: drop --codec/--crf/--bitrate/--preset/--gop/"
                        "--lossless, or cut it with --start/--frames/--crop to re-encode it")
    stream = stream or StreamOptions()
    with VideoReader(source) if hr_files is None else contextlib.nullcontext() as reader:
        width, height = (reader.info.width, reader.info.height) if reader else _frame_size(source, hr_files)
        unit = scale if keep_lr_video or not stream.chroma_subsampled else 2 * scale
        x, y, w, h = _hr_box(width, height, scale, crop, lr_given, unit)

        fps = reader.info.fps if reader else 25.0
        allocate = allocate or in_memory
        hr_alloc: Allocator = lambda name, shape: allocate("hr", shape)  # noqa: E731
        lr_alloc: Allocator = lambda name, shape: allocate("lr", shape)  # noqa: E731
        if reader:
            hr = reader.frames(start, count, (x, y, w, h), progress, hr_alloc)
    if hr_files is not None:
        files = [hr_files[i] for i in _frame_range(len(hr_files), start, count, str(source))]
        hr = read_images(files, (x, y, w, h), progress, hr_alloc)

    lr_box = (x // scale, y // scale, w // scale, h // scale)
    if lr_files is not None:
        _check_lr_size(_frame_size(source, lr_files), (width, height), scale, lr_files[0].parent)
        lr = read_images([lr_files[i] for i in range(start, start + len(hr))], lr_box, allocate=lr_alloc)
    elif lr_source is not None:
        lr = _read_lr_source(Path(lr_source), scale, start, len(hr), lr_box, width, height, whole=keep_lr_video,
                             allocate=lr_alloc)
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
    for frame in decode_stream(path):
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
    lr_source: Path, scale: int, start: int, count: int, box: tuple[int, int, int, int], hr_w: int, hr_h: int,
    whole: bool = False, allocate: Allocator | None = None,
) -> np.ndarray:
    """`count` LR frames from `start`; with `whole`, every frame of the video, which must then number `count`."""
    kind, files, _ = _source_reader(lr_source, scale)
    if kind == "vsd4k":
        raise StdoError(f"--lr-video {lr_source} is a VSD4K folder: give it as SOURCE instead")
    if files is None:
        with VideoReader(lr_source) as reader:
            _check_lr_size((reader.info.width, reader.info.height), (hr_w, hr_h), scale, lr_source)
            lr = reader.frames(start, None if whole else count, box, allocate=allocate)
    else:
        _check_lr_size(_frame_size(lr_source, files), (hr_w, hr_h), scale, lr_source)
        lr = read_images(files[start : start + count], box, allocate=allocate)
    if len(lr) != count:
        raise StdoError(f"LR {lr_source} has {len(lr)} frames from --start {start} but HR has {count}: give matching clips")
    return lr


def _check_lr_size(lr_size: tuple[int, int], hr_size: tuple[int, int], scale: int, where: Path) -> None:
    (lw, lh), (hw, hh) = lr_size, hr_size
    if (lw, lh) != (hw // scale, hh // scale):
        raise StdoError(
            f"LR {where} is {lw}x{lh} but HR {hw}x{hh} at x{scale} needs {hw // scale}x{hh // scale}: "
            "give LR frames made at this scale"
        )
