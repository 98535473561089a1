"""The shipped LR stream: its codecs (one table, `CODECS`) and its encoding with tagged colour.

Reading a video is stdo.video's (one handle, `open_video`); the colour arithmetic is stdo.colour's.

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
from typing import Iterable

import av
import click
import numpy as np

from stdo.colour import RANGE_FULL, RANGE_LIMITED, SPACE_BT709, SPACE_RGB, rgb_to_yuv420
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
    # the encoder library makes the thread that opens it real-time (SCHED_FIFO 99) when it can (as root): every
    # process that thread starts later inherits it, and one that spins starves the machine, so it is put back
    claims_realtime: bool = False


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
                 environment=(("SVT_LOG", "1"),),  # SVT-AV1 prints its whole configuration otherwise
                 claims_realtime=True),
}
SMALL_FRAME = 64  # pixels: x265's largest coding unit, its default CTU
MAX_KBPS = 500_000


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


# ---------------------------------------------------------------------------- encoding


def _yuv_frame(rgb: np.ndarray) -> av.VideoFrame:
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], "yuv420p")
    for plane, data in zip(frame.planes, rgb_to_yuv420(rgb)):
        padded = np.zeros((plane.height, plane.line_size), np.uint8)
        padded[:, : data.shape[1]] = data
        plane.update(padded)
    frame.colorspace, frame.color_range = SPACE_BT709, RANGE_LIMITED
    return frame


def _scheduling() -> tuple[int, int] | None:
    """The calling thread's scheduling policy and priority (None where the platform does not say)."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def _restore_scheduling(scheduling: tuple[int, int] | None) -> None:
    if scheduling is not None and _scheduling() != scheduling:
        policy, priority = scheduling
        os.sched_setscheduler(0, policy, os.sched_param(priority))


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
        self.scheduling = _scheduling()
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
        if CODECS[self.options.codec].claims_realtime:
            _restore_scheduling(self.scheduling)

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
            _restore_scheduling(self.scheduling)


def encode_stream(path: Path, frames: Iterable[np.ndarray], fps: float = 25.0,
                  options: StreamOptions = StreamOptions()) -> None:
    """Encode uint8 RGB frames [H, W, 3] into an mp4 at `path`, atomically."""
    with StreamWriter(path, fps, options) as writer:
        for frame in frames:
            writer.write(frame)
