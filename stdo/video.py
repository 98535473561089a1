"""Reading frames: video files (PyAV, one handle: `open_video`), frame folders, .npy arrays.

Frames are uint8 arrays T×H×W×3 (RGB). Every reader checks what it reads and raises
StdoError with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from stdo.errors import StdoError
from stdo.colour import frame_colour, frame_to_rgb
from stdo.progress import CountProgress

log = logging.getLogger(__name__)

# (name, shape) -> a uint8 array to fill: in memory, or memory-mapped files so that a clip's frames never need
# to fit in RAM (stdo-cluster)
Allocator = Callable[[str, tuple[int, ...]], np.ndarray]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ---------------------------------------------------------------------------- listing


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name))


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in numeric order (2.png before 10.png)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise StdoError(f"{folder} has no PNG or JPG frames: point at a folder of frames or a video file")
    return sorted(files, key=_natural_key)


# ---------------------------------------------------------------------------- decoding


def _check_range(start: int, count: int | None) -> None:
    if start < 0:
        raise StdoError(f"`start` {start} is negative: frames count from 0")
    if count is not None and count < 1:
        raise StdoError(f"`frames` {count} asks for no frames: give 1 or more")


def frame_range(total: int, start: int, count: int | None, what: str) -> range:
    _check_range(start, count)
    if start >= total:
        raise StdoError(f"{what} has {total} frames: `start` {start} is past its end")
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
    frames: int  # as the container declares it; 0 when it does not say (Video.count decodes to know)
    fps: float


# what the manifest calls a codec FFmpeg names otherwise
_CODEC_NAMES = {"libdav1d": "av1"}


def _corrupt(path: Path, frame: int | None, error: av.error.FFmpegError) -> StdoError:
    where = f" at frame {frame}" if frame is not None else ""
    return StdoError(f"{path} is corrupt or truncated{where} ({error.strerror or error}): re-encode or re-download it")


class Video:
    """A video file opened once, as PyAV opens one (`open_video`): `.info`, `.count()`, `.decode()`, `.read()`,
    `.describe()`. The only reader of containers in stdo (stdo.stream writes them).

    A context manager (closing the container). Decoding goes forward from the start: a second decoding pass (after
    `count` had to decode a container that does not declare its length, or a second `decode`) opens the file
    again."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StdoError(f"{path} does not exist: give a video file or a folder of frames")
        self._open()
        codec = self._stream.codec_context
        self.info = VideoInfo(codec.width, codec.height, int(self._stream.frames or 0),
                              float(self._stream.average_rate or self._stream.guessed_rate or 25))
        self._counted: int | None = None

    def _open(self) -> None:
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise StdoError(f"{self.path} is not a video FFmpeg can read ({e.strerror or e}): check the file is "
                            "complete") from None
        if not self._container.streams.video:
            self._container.close()
            raise StdoError(f"{self.path} has no video stream: give a video file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._decoding = False

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """The decoded frames from the first, as FFmpeg gives them (no colour conversion)."""
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
                self._counted = sum(1 for _ in self._decoded())
            except av.error.FFmpegError as e:
                raise _corrupt(self.path, None, e) from None
        return self._counted

    def decode(self) -> Iterator[np.ndarray]:
        """RGB frames (uint8 [H, W, 3]) in order, each through stdo.colour.frame_to_rgb."""
        index = 0
        try:
            for frame in self._decoded():
                yield frame_to_rgb(frame)
                index += 1
        except av.error.FFmpegError as e:
            raise _corrupt(self.path, index + 1, e) from None

    def read(self, start: int = 0, count: int | None = None, box: tuple[int, int, int, int] | None = None,
             progress: CountProgress = None, allocate: Allocator | None = None) -> np.ndarray:
        """Decode frames [start, start+count) cropped to box=(x, y, w, h), uint8 [T, H, W, 3].

        With `allocate` (e.g. memory-mapped files) the frames go straight into the array it gives, whose length
        must be known first: a container that does not declare it is counted by a decoding pass."""
        path = self.path
        declared = self.info.frames or (self.count() if allocate is not None else 0)
        if declared:
            wanted = frame_range(declared, start, count, str(path))
        else:  # the container does not say: decode until the stream ends
            _check_range(start, count)
            wanted = range(start, start + count if count is not None else sys.maxsize)
        # Fill one preallocated array when the length is known (no 2x copy at the end).
        out: np.ndarray | None = None
        frames: list[np.ndarray] = []
        index, n = -1, 0
        try:
            for frame in self._decoded():
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
            raise _corrupt(path, index + 1, e) from None
        if n == 0:
            raise StdoError(f"{path} has {index + 1} decodable frames: `start` {start} is past its end or the file "
                            "is truncated")
        if declared and n < len(wanted):
            raise StdoError(f"{path} ends after {index + 1} of its {declared} frames: the file is truncated, "
                            "re-download or re-encode it")
        return out if out is not None else np.stack(frames)

    def describe(self) -> dict:
        """What a manifest says of the file: codec, profile, pixel format, colour, size, rate, bytes, duration.

        The colour is the first frame's (decoded for it); the frame count is declared or counted (one pass, no
        conversion)."""
        try:
            first = next(self._decoded(), None)
        except av.error.FFmpegError as e:
            raise _corrupt(self.path, 1, e) from None
        if first is None:
            raise StdoError(f"{self.path} has no decodable frame: re-encode it")
        matrix, full = frame_colour(first)
        codec = self._stream.codec_context
        frames, fps, size = self.count(), self.info.fps, self.path.stat().st_size
        duration = frames / fps
        return {
            "codec": _CODEC_NAMES.get(codec.name, codec.name), "profile": codec.profile,
            "pix_fmt": first.format.name, "matrix": matrix, "range": "full" if full else "limited",
            "width": first.width, "height": first.height, "frames": frames, "fps": fps,
            "duration_s": round(duration, 6), "bytes": size, "bitrate_kbps": round(8 * size / duration / 1000, 3),
        }


def open_video(path: Path) -> Video:
    """Open a video file once (StdoError, one line, for a missing, unreadable or stream-less file)."""
    return Video(path)


def in_memory(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The default Allocator: a plain uint8 array."""
    return np.empty(shape, np.uint8)


def read_video(path: Path, start: int = 0, count: int | None = None, box: tuple[int, int, int, int] | None = None,
               progress: CountProgress = None, allocate: Allocator | None = None) -> tuple[np.ndarray, float]:
    """Frames [start, start+count) of a video cropped to box, and its fps: `open_video(path).read(...)` in one call."""
    with open_video(path) as video:
        return video.read(start, count, box, progress, allocate), video.info.fps


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise StdoError(f"{path} is not a readable image ({e}): replace or remove it") from None


def read_images(
    files: Sequence[Path], box: tuple[int, int, int, int] | None = None, progress: CountProgress = None,
    allocate: Allocator | None = None,
) -> np.ndarray:
    """Read image files into T×H×W×3 uint8; all must have one size."""
    first = read_image(files[0])
    out = (allocate or in_memory)("frames", (len(files),) + _crop_array(first, box).shape)
    for i, path in enumerate(files):
        image = first if i == 0 else read_image(path)
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
            yield read_image(path)
    elif source.suffix == ".npy":
        try:
            frames = np.load(source, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise StdoError(f"{source} is not a readable .npy array ({e.__class__.__name__})") from None
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise StdoError(f"{source} holds {frames.dtype} {frames.shape}, not uint8 frames [T, H, W, 3]")
        yield from frames
    else:
        with open_video(source) as video:
            yield from video.decode()


def frame_size(source: Path, files: Sequence[Path] | None) -> tuple[int, int]:
    if files is not None:
        h, w = read_image(files[0]).shape[:2]
        return w, h
    with open_video(source) as video:
        return video.info.width, video.info.height


