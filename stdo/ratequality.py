"""Bytes delivered against quality: the HR stream a user would otherwise send, at a CRF or a target PSNR.

The baseline every delivery engineer knows is plain HR streaming: the original frames encoded
at some CRF. `hr_stream_point` encodes HR frames with the same encoder settings as the LR stream
(stdo.stream) and measures what the client would see against the original frames, with the
same border shave as the player; `hr_stream_at_psnr` finds the largest CRF (the fewest bytes)
that still reaches a target RGB PSNR, by bisection (quality falls with CRF).

HR frames are read twice per point through a callable that returns a fresh iterator, so clips
of any length stream through in bounded memory.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from stdo.errors import StdoError
from stdo.metrics import psnr, psnr_y, ssim
from stdo.stream import CODECS, StreamOptions, encode_stream
from stdo.video import open_video
from stdo.resample import as_nchw

Frames = Callable[[], Iterable[np.ndarray]]


@dataclass
class RatePoint:
    """One delivered stream: its bytes and the quality the client sees against the original HR."""

    crf: int | None
    bytes: int
    psnr: float  # RGB, mean over frames
    psnr_y: float  # BT.601 luma
    ssim: float

    def to_dict(self) -> dict:
        return asdict(self)


def quality(decoded: Iterator[np.ndarray], reference: Iterable[np.ndarray], shave: int) -> tuple[float, float, float]:
    """Mean per-frame (RGB PSNR, Y-PSNR, SSIM) of decoded frames against reference frames."""
    rgb, y, s = [], [], []
    for out, ref in zip(decoded, reference, strict=True):
        a, b = as_nchw(out[None]).float(), as_nchw(ref[None]).float()
        rgb.append(float(psnr(a, b, shave)[0]))
        y.append(float(psnr_y(a, b, shave)[0]))
        s.append(float(ssim(a, b, shave)[0]))
    return float(np.mean(rgb)), float(np.mean(y)), float(np.mean(s))


def hr_stream_point(hr: Frames, fps: float, options: StreamOptions, shave: int = 0) -> RatePoint:
    """Encode the HR frames with `options`, decode them, and measure them against the originals."""
    with tempfile.TemporaryDirectory(prefix="stdo-hr-") as tmp:
        path = Path(tmp) / "hr.mp4"
        encode_stream(path, hr(), fps, options)
        try:
            with open_video(path) as video:
                measured = quality(video.decode(), hr(), shave)
        except ValueError:
            raise StdoError("the HR frames have odd sizes, which a 4:2:0 stream pads: crop them to even sizes") from None
        return RatePoint(options.effective_crf, path.stat().st_size, *measured)


def hr_stream_at_psnr(hr: Frames, fps: float, target_psnr: float, shave: int = 0, codec: str = "h264",
                      preset: str | None = None,
                      progress: Callable[[int], None] | None = None) -> tuple[RatePoint, list[RatePoint]]:
    """The largest CRF whose RGB PSNR reaches `target_psnr` (the cheapest HR stream that matches it).

    Returns (that point, every point tried). When even the lowest CRF falls short, the lowest
    CRF's point is returned (its psnr says by how much).
    """
    lo, hi = CODECS[codec].crf_range
    tried: dict[int, RatePoint] = {}

    def at(crf: int) -> RatePoint:
        if crf not in tried:
            tried[crf] = hr_stream_point(hr, fps, StreamOptions(codec=codec, crf=crf, preset=preset), shave)
            if progress:
                progress(1)
        return tried[crf]

    if at(lo).psnr < target_psnr:
        return at(lo), sorted(tried.values(), key=lambda p: p.crf)
    while lo < hi:  # invariant: at(lo) reaches the target
        mid = (lo + hi + 1) // 2
        if at(mid).psnr >= target_psnr:
            lo = mid
        else:
            hi = mid - 1
    return at(lo), sorted(tried.values(), key=lambda p: p.crf)


def bytes_at_psnr(points: list[RatePoint], target: float) -> float | None:
    """Stream bytes at exactly `target` RGB PSNR, interpolated in log-bytes between the two measured points
    around it (integer CRFs step over the target); None outside the points' PSNR range."""
    ordered = sorted(points, key=lambda p: p.psnr)
    for lo, hi in zip(ordered, ordered[1:]):
        if lo.psnr <= target <= hi.psnr:
            share = 0.0 if hi.psnr == lo.psnr else (target - lo.psnr) / (hi.psnr - lo.psnr)
            return float(np.exp(np.log(lo.bytes) + share * (np.log(hi.bytes) - np.log(lo.bytes))))
    return None
