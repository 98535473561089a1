"""Colour: RGB to the shipped 4:2:0 planes and every decoded frame back to RGB.

One function turns every decoded frame into RGB (`frame_to_rgb`): it reads the stream's own matrix (BT.601,
BT.709, BT.2020 or RGB) and range (limited or full) and upsamples 4:2:0 chroma bilinearly with H.264's default
chroma siting (co-sited with even luma columns, halfway between luma rows). Untagged streams are read as BT.601
up to 576 lines and BT.709 above (as common players do), limited range unless the pixel format is a JPEG one
(yuvj*). android_demo/web/stdo/yuv.js is this module's twin: it repeats `yuv_to_rgb`'s arithmetic, so the web
player sees the frames the Python side sees (tests/test_web.py compares them).
"""

from __future__ import annotations

import av
import numpy as np

from stdo.errors import StdoError

# AVColorSpace / AVColorRange values as FFmpeg numbers them
SPACE_RGB, SPACE_BT709, SPACE_UNSPECIFIED, SPACE_BT470BG, SPACE_SMPTE170M, SPACE_BT2020 = 0, 1, 2, 5, 6, 9
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
MATRIX_OF_SPACE = {SPACE_BT709: "bt709", SPACE_BT470BG: "bt601", SPACE_SMPTE170M: "bt601", SPACE_BT2020: "bt2020"}
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
SHIPPED_MATRIX = "bt709"


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
