"""The shipped LR stream: encode it with tagged colour, decode it to RGB, describe it.

One function turns every decoded frame into RGB (`frame_to_rgb`): it reads the stream's
own matrix (BT.601, BT.709, BT.2020 or RGB) and range (limited or full) and upsamples 4:2:0
chroma bilinearly with H.264's default chroma siting (co-sited with even luma columns, halfway
between luma rows). The web player repeats the same arithmetic, so both sides see the same
frames. Untagged streams are read as BT.601 up to 576 lines and BT.709 above (as common players
do), limited range unless the pixel format is a JPEG one (yuvj*).

The default stream is what phones and browsers decode in hardware: H.264 High, yuv420p, CRF 23
(libx264's own default), BT.709 limited range, tagged in the bitstream and the container.
BT.709 because it is the HD standard every decoder honours when tagged, so one matrix serves
every resolution; limited range because full-range 4:2:0 is mis-rendered by some Android
hardware decoders and browsers that ignore the range flag. `lossless` is the STDO paper's
protocol: RGB H.264 (High 4:4:4, qp 0) or RGB HEVC (lossless=1), decoded bit-exact.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import click
import numpy as np

from stdo.errors import StdoError
from stdo.fileio import temp_beside
from stdo.options import flag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codec:
    """A codec the LR stream may use, and everything its encoder is told that another codec's is not."""

    encoder: str
    lossless_encoder: str | None  # encoder for the lossless RGB stream (None: no lossless)
    crf_range: tuple[int, int]
    default_crf: int
    presets: tuple[str, ...]
    default_preset: str
    profile: str | None  # asked of the encoder for 4:2:0 8-bit
    label: str  # its name in reports
    lossless_pix_fmt: str | None = None  # the lossless stream's RGB layout
    lossless_options: tuple[tuple[str, str], ...] = ()  # encoder options of the lossless stream
    params_option: str | None = None  # the encoder's own parameter string ("a=1:b=2"), and what goes in it:
    params: tuple[str, ...] = ()  # always,
    lossless_params: tuple[str, ...] = ()  # for the lossless stream,
    small_frame_params: tuple[str, ...] = ()  # for frames smaller than SMALL_FRAME pixels on a side
    tag: str | None = None  # the mp4 sample entry players want
    environment: tuple[tuple[str, str], ...] = ()  # variables the encoder library reads (set if unset)


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
CODECS = {
    "h264": Codec("libx264", "libx264rgb", (1, 51), 23, _X26X_PRESETS, "medium", "high", "H.264",
                  lossless_pix_fmt="rgb24", lossless_options=(("qp", "0"),)),
    "hevc": Codec("libx265", "libx265", (0, 51), 28, _X26X_PRESETS, "medium", "main", "HEVC",
                  lossless_pix_fmt="gbrp", params_option="x265-params", params=("log-level=error",),
                  lossless_params=("lossless=1",),
                  # x265's CU-tree corrupts the heap on frames smaller than a CTU (about half the runs on 44x36
                  # crashed the process; none of 22 with it off)
                  small_frame_params=("cutree=0",),
                  tag="hvc1"),  # what Apple's players need to play HEVC in mp4
    "av1": Codec("libsvtav1", None, (1, 63), 35, tuple(str(p) for p in range(14)), "8", None, "AV1",
                 environment=(("SVT_LOG", "1"),)),  # SVT-AV1 prints its whole configuration otherwise
}
SMALL_FRAME = 64  # pixels: x265's largest coding unit, its default CTU
MAX_KBPS = 500_000

# AVColorSpace / AVColorRange values as FFmpeg numbers them
SPACE_RGB, SPACE_BT709, SPACE_UNSPECIFIED, SPACE_BT470BG, SPACE_SMPTE170M, SPACE_BT2020 = 0, 1, 2, 5, 6, 9
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
MATRIX_OF_SPACE = {SPACE_BT709: "bt709", SPACE_BT470BG: "bt601", SPACE_SMPTE170M: "bt601", SPACE_BT2020: "bt2020"}
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
SHIPPED_MATRIX = "bt709"


@dataclass(frozen=True)
class StreamOptions:
    """How the LR stream is encoded. crf and bitrate are exclusive; neither means the codec's default CRF."""

    codec: str = flag("h264", "Codec of the LR stream: h264 (libx264), hevc (libx265), av1 (libsvtav1); h264 is "
                      "High yuv420p, BT.709 limited range.", type=click.Choice(tuple(CODECS)))
    crf: int | None = flag(None, "Constant rate factor of the LR stream [default: h264 23, hevc 28, av1 35].",
                           type=int)
    bitrate: int | None = flag(None, "Average bitrate of the LR stream in kbit/s (instead of --crf).", type=int,
                               metavar="KBPS")
    preset: str | None = flag(None, "Encoder preset: ultrafast..veryslow (h264, hevc), 0..13 (av1). [default: "
                              "medium, av1 8]", type=str)
    gop: int | None = flag(None, "Frames between keyframes of the LR stream. [default: 2 seconds]", type=int)
    lossless: bool = flag(False, "Lossless RGB LR stream (h264 or hevc): the STDO paper's protocol.")

    def check(self) -> None:
        """Raise StdoError for a codec this FFmpeg lacks or an option out of range."""
        if self.codec not in CODECS:
            raise StdoError(f"`codec` {self.codec!r} is unknown: use one of {', '.join(CODECS)}")
        c = CODECS[self.codec]
        encoder = c.lossless_encoder if self.lossless else c.encoder
        if self.lossless and encoder is None:
            raise StdoError(f"`lossless` is not available for {self.codec}: use `codec` h264 or hevc for a lossless stream")
        if self.lossless and (self.crf is not None or self.bitrate is not None):
            raise StdoError("`lossless` cannot be combined with `crf` or `bitrate`: drop one of them")
        if self.crf is not None and self.bitrate is not None:
            raise StdoError("`crf` and `bitrate` are exclusive: give one of them")
        lo, hi = c.crf_range
        if self.crf is not None and not lo <= self.crf <= hi:
            raise StdoError(f"`crf` {self.crf} is outside {lo}..{hi} for {self.codec}: give a CRF in that range"
                            + (", or `lossless` for a lossless stream" if self.crf < lo and c.lossless_encoder else ""))
        if self.bitrate is not None and not 1 <= self.bitrate <= MAX_KBPS:
            raise StdoError(f"`bitrate` {self.bitrate} is outside 1..{MAX_KBPS} kbit/s: give a bitrate in that range")
        if self.preset is not None and self.preset not in c.presets:
            raise StdoError(f"`preset` {self.preset!r} is not a {self.codec} preset: use one of {', '.join(c.presets)}")
        if self.gop is not None and self.gop < 1:
            raise StdoError(f"`gop` {self.gop} is below 1: give the frames between keyframes")
        try:
            av.codec.Codec(encoder, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing codec
            raise StdoError(f"this FFmpeg has no {encoder} encoder for `codec` {self.codec}: "
                            f"use `codec` {' or '.join(k for k in CODECS if k != self.codec)}") from None

    @property
    def chroma_subsampled(self) -> bool:
        return not self.lossless

    def describe(self) -> str:
        if self.lossless:
            return f"{self.codec} lossless RGB"
        rate = f"{self.bitrate} kbit/s" if self.bitrate is not None else f"crf {self.effective_crf}"
        return f"{self.codec} yuv420p {rate}"

    @property
    def effective_crf(self) -> int | None:
        if self.lossless or self.bitrate is not None:
            return None
        return self.crf if self.crf is not None else CODECS[self.codec].default_crf

    def to_dict(self) -> dict:
        return {"codec": self.codec, "crf": self.effective_crf, "bitrate_kbps": self.bitrate,
                "preset": self.preset or CODECS[self.codec].default_preset, "gop": self.gop, "lossless": self.lossless}


# ---------------------------------------------------------------------------- colour


def _matrix_rows(matrix: str) -> np.ndarray:
    """3x3 float64 matrix taking RGB in [0, 1] to (Y, Cb, Cr) with Y in [0, 1] and Cb, Cr in [-0.5, 0.5]."""
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    return np.array([[kr, kg, kb],
                     [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                     [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])


def _range_scale(full_range: bool) -> tuple[float, float, float]:
    """(luma offset, luma span, chroma span) of 8-bit codes."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def rgb_to_yuv420(rgb: np.ndarray, matrix: str = SHIPPED_MATRIX, full_range: bool = False) -> tuple[np.ndarray, ...]:
    """uint8 RGB [H, W, 3] (H, W even) -> uint8 planes Y [H, W], Cb and Cr [H/2, W/2].

    Chroma is filtered [1, 2, 1]/4 across columns centred on the even column (H.264's default
    siting) and averaged over each pair of rows. Both filters are linear, so they run on the
    RGB planes before the matrix (a quarter of the pixels; 1080p in ~13 ms on one core).
    """
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise StdoError(f"a {w}x{h} frame cannot be stored as 4:2:0: sizes must be even")
    offset, y_span, c_span = _range_scale(full_range)
    m = _matrix_rows(matrix) / 255.0
    planes = [rgb[..., i].astype(np.float32) for i in range(3)]

    def code(rows: np.ndarray, inputs: list[np.ndarray], span: float, base: float) -> np.ndarray:
        out = inputs[0] * np.float32(span * rows[0])
        out += inputs[1] * np.float32(span * rows[1])
        out += inputs[2] * np.float32(span * rows[2])
        out += np.float32(base)
        return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)

    def subsample(p: np.ndarray) -> np.ndarray:
        rows = 0.5 * (p[0::2] + p[1::2])  # [H/2, W]
        left = np.concatenate([rows[:, :1], rows[:, 1::2][:, :-1]], axis=1)  # column 2i-1, clamped at the edge
        return 0.25 * left + 0.5 * rows[:, 0::2] + 0.25 * rows[:, 1::2]

    y = code(m[0], planes, y_span, offset)
    sub = [subsample(p) for p in planes]
    return y, code(m[1], sub, c_span, 128.0), code(m[2], sub, c_span, 128.0)


def _upsample_chroma(c: np.ndarray, height: int, width: int, sub_x: bool, sub_y: bool) -> np.ndarray:
    """Chroma plane -> [height, width] float32, bilinear, H.264 default siting (see module doc)."""
    c = c.astype(np.float32)
    if sub_y:  # chroma row j sits at luma row 2j + 0.5
        up = np.concatenate([c[:1], c[:-1]], axis=0)
        down = np.concatenate([c[1:], c[-1:]], axis=0)
        out = np.empty((2 * len(c), c.shape[1]), np.float32)
        out[0::2] = 0.75 * c + 0.25 * up
        out[1::2] = 0.75 * c + 0.25 * down
        c = out[:height]
    if sub_x:  # chroma column i sits on luma column 2i
        right = np.concatenate([c[:, 1:], c[:, -1:]], axis=1)
        out = np.empty((c.shape[0], 2 * c.shape[1]), np.float32)
        out[:, 0::2] = c
        out[:, 1::2] = 0.5 * (c + right)
        c = out[:, :width]
    return c


def yuv_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, matrix: str, full_range: bool) -> np.ndarray:
    """uint8 planes (chroma at full, half-width or half-size) -> uint8 RGB [H, W, 3]."""
    h, w = y.shape
    sub_x, sub_y = cb.shape[1] < w, cb.shape[0] < h
    offset, y_span, c_span = _range_scale(full_range)
    ycc = np.empty((h, w, 3), np.float32)
    ycc[..., 0] = (y.astype(np.float32) - offset) / y_span
    ycc[..., 1] = (_upsample_chroma(cb, h, w, sub_x, sub_y) - 128.0) / c_span
    ycc[..., 2] = (_upsample_chroma(cr, h, w, sub_x, sub_y) - 128.0) / c_span
    to_rgb = (np.linalg.inv(_matrix_rows(matrix)).T * 255.0).astype(np.float32)
    return np.clip(np.rint(ycc @ to_rgb), 0, 255).astype(np.uint8)


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    p = frame.planes[index]
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]


def frame_colour(frame: av.VideoFrame) -> tuple[str, bool]:
    """(matrix, full range) of a decoded frame: its tags, else the usual guess (module doc)."""
    if frame.colorspace == SPACE_RGB and frame.format.name.startswith("gbr"):
        return "rgb", True
    matrix = MATRIX_OF_SPACE.get(frame.colorspace) or ("bt601" if frame.height <= 576 else "bt709")
    full = frame.color_range == RANGE_FULL or frame.format.name.startswith("yuvj")
    return matrix, full


_PLANAR_YUV = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame -> uint8 RGB [H, W, 3] with the stream's own matrix and range: the one conversion."""
    name = frame.format.name
    if name in ("rgb24",):
        return frame.to_ndarray()
    if name == "gbrp":
        g, b, r = (_plane(frame, i) for i in range(3))
        return np.stack([r, g, b], axis=-1)
    matrix, full = frame_colour(frame)
    if matrix == "rgb":  # RGB in another layout (e.g. 10-bit gbrp): FFmpeg repacks without a matrix
        return frame.to_ndarray(format="rgb24")
    if name not in _PLANAR_YUV:  # other bit depths or layouts: only repacked to 8-bit 4:4:4, same matrix
        frame = frame.reformat(format="yuvj444p" if full else "yuv444p")
    return yuv_to_rgb(_plane(frame, 0), _plane(frame, 1), _plane(frame, 2), matrix, full)


# ---------------------------------------------------------------------------- encoding


def _yuv_frame(rgb: np.ndarray) -> av.VideoFrame:
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], "yuv420p")
    for plane, data in zip(frame.planes, rgb_to_yuv420(rgb)):
        padded = np.zeros((plane.height, plane.line_size), np.uint8)
        padded[:, : data.shape[1]] = data
        plane.update(padded)
    frame.colorspace, frame.color_range = SPACE_BT709, RANGE_LIMITED
    return frame


class StreamWriter:
    """Streaming encoder into an mp4, atomic: frames go to a temp file that replaces `path` on a clean close.

    Lossy streams are yuv420p, BT.709 limited range, tagged; frames of odd size are edge-padded
    to even (what 4:2:0 needs), so use even sizes where the decoded frames must match.
    """

    def __init__(self, path: Path, fps: float = 25.0, options: StreamOptions = StreamOptions()):
        options.check()
        self.path, self.fps, self.options = Path(path), fps, options
        self.stream = None
        self.index = 0

    def __enter__(self) -> "StreamWriter":
        self.tmp = temp_beside(self.path, ".mp4")
        # faststart: the index goes first, so a player can start before the whole file arrives
        self.container = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "faststart"})
        return self

    def _open(self, height: int, width: int) -> None:
        o, codec = self.options, CODECS[self.options.codec]
        encoder = codec.lossless_encoder if o.lossless else codec.encoder
        for name, value in codec.environment:
            os.environ.setdefault(name, value)
        self.stream = self.container.add_stream(encoder, rate=Fraction(self.fps).limit_denominator(1001))
        cc = self.stream.codec_context
        if o.lossless:
            self.stream.width, self.stream.height = width, height
            self.stream.pix_fmt = codec.lossless_pix_fmt
            cc.colorspace, cc.color_range = SPACE_RGB, RANGE_FULL
        else:
            self.stream.width, self.stream.height = width + width % 2, height + height % 2
            self.stream.pix_fmt = "yuv420p"
            cc.colorspace, cc.color_range = SPACE_BT709, RANGE_LIMITED
        cc.color_primaries, cc.color_trc = 1, 1  # BT.709
        cc.gop_size = o.gop or max(1, round(2 * self.fps))
        options = {"preset": o.preset or codec.default_preset}
        if o.lossless:
            options.update(codec.lossless_options)
        elif o.bitrate is not None:
            cc.bit_rate = o.bitrate * 1000
        else:
            options["crf"] = str(o.effective_crf)
        if codec.profile and not o.lossless:
            options["profile"] = codec.profile
        params = codec.params + (codec.lossless_params if o.lossless else ()) \
            + (codec.small_frame_params if min(height, width) < SMALL_FRAME else ())
        if params:
            options[codec.params_option] = ":".join(params)
        if codec.tag:
            self.stream.codec_tag = codec.tag
        self.stream.options = options

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self.stream is None:
            self._open(h, w)
        ph, pw = self.stream.height, self.stream.width
        if (ph, pw) != (h, w):
            frame = np.pad(frame, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
        frame = np.ascontiguousarray(frame)
        if self.options.lossless:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if self.stream.pix_fmt != "rgb24":
                video_frame = video_frame.reformat(format=self.stream.pix_fmt)
            video_frame.colorspace, video_frame.color_range = SPACE_RGB, RANGE_FULL
        else:
            video_frame = _yuv_frame(frame)
        video_frame.pts = self.index
        video_frame.time_base = Fraction(1) / self.stream.codec_context.rate
        self.index += 1
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.stream is None:
                    raise StdoError(f"no frames to write to {self.path}")
                for packet in self.stream.encode():  # flush the encoder
                    self.container.mux(packet)
                self.container.close()
                os.replace(self.tmp, self.path)
        finally:
            self.container.close()
            if self.tmp.exists():
                self.tmp.unlink()


def encode_stream(path: Path, frames: Iterable[np.ndarray], fps: float = 25.0,
                  options: StreamOptions = StreamOptions()) -> None:
    """Encode uint8 RGB frames [H, W, 3] into an mp4 at `path`, atomically."""
    with StreamWriter(path, fps, options) as writer:
        for frame in frames:
            writer.write(frame)


# ---------------------------------------------------------------------------- reading


def open_video(path: Path) -> av.container.InputContainer:
    if not Path(path).exists():
        raise StdoError(f"{path} does not exist: give a video file or a folder of frames")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise StdoError(f"{path} is not a video FFmpeg can read ({e.strerror or e}): check the file is complete") from None
    if not container.streams.video:
        container.close()
        raise StdoError(f"{path} has no video stream: give a video file")
    return container


def decode_stream(path: Path) -> Iterator[np.ndarray]:
    """RGB frames (uint8 [H, W, 3]) of a video file in order, each through `frame_to_rgb`."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                yield frame_to_rgb(frame)
                index += 1
        except av.error.FFmpegError as e:
            raise StdoError(f"{path} is corrupt or truncated at frame {index + 1} ({e.strerror or e}): re-encode it") from None


def stream_info(path: Path) -> dict:
    """What a manifest says about a video file: codec, profile, pixel format, colour, size, rate, bytes, duration."""
    path = Path(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = int(stream.frames or 0)
        first = next(container.decode(stream), None)
        if first is None:
            raise StdoError(f"{path} has no decodable frame: re-encode it")
        matrix, full = frame_colour(first)
    if not frames:
        frames = sum(1 for _ in decode_stream(path))
    size = path.stat().st_size
    duration = frames / fps
    return {
        "codec": {"h264": "h264", "hevc": "hevc", "libdav1d": "av1", "av1": "av1"}.get(cc.name, cc.name),
        "profile": cc.profile, "pix_fmt": first.format.name,
        "matrix": matrix, "range": "full" if full else "limited",
        "width": first.width, "height": first.height, "frames": frames, "fps": fps,
        "duration_s": round(duration, 6), "bytes": size, "bitrate_kbps": round(8 * size / duration / 1000, 3),
    }
