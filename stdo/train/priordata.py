"""What a prior learns from: HR frames and the LR a client really decodes from them.

A prior is trained once and carried by every client, so it must learn the LR it will meet: frames
downscaled (bicubic, antialiased) and then coded by the shipped codec at a spread of CRFs, not clean
bicubic. Photographs become short clips by panning a window across them (a few HR pixels per frame,
so sub-pixel motion at LR), so the codec codes them as a video: an intra frame, then predicted ones.

`skimage_photos` are scikit-image's colour photographs, which the tests make small priors from; the shipped
priors learn from the catalogue of stdo.train.priorcontent, made into coded clip sets by stdo.train.priorset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from stdo.errors import StdoError
from stdo.stream import StreamOptions, encode_stream
from stdo.video import read_video
from stdo.resample import downscale_bicubic
from stdo.video import IMAGE_SUFFIXES, read_image

PAN_STEP = 3  # HR pixels per frame along x (and 1 along y): 0.75 LR pixels at x4
# colour photographs in scikit-image's wheel (the grey and synthetic ones teach little colour detail)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
                  "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "grass.png", "gravel.png",
                  "color.png", "brick.png", "camera.png", "horse.png")


def skimage_photos() -> list[Path]:
    """The photographs scikit-image ships (installed with the `test` or `prior` extra), as files."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution("scikit-image")
    except PackageNotFoundError:
        raise StdoError("scikit-image is not installed: pip install scikit-image (the prior's content)") from None
    paths = [Path(str(dist.locate_file(f"skimage/data/{name}"))) for name in SKIMAGE_PHOTOS]
    return [p for p in paths if p.is_file()]


def is_image(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in IMAGE_SUFFIXES


def pan_clip(image: np.ndarray, frames: int, scale: int) -> np.ndarray:
    """[frames, h, w, 3]: a window panning across `image`, its sides multiples of 2·scale (4:2:0 LR)."""
    unit = 2 * scale
    h = (image.shape[0] - frames) // unit * unit
    w = (image.shape[1] - PAN_STEP * frames) // unit * unit
    if h < 4 * unit or w < 4 * unit:
        raise StdoError(f"an image of {image.shape[1]}x{image.shape[0]} is too small to pan {frames} frames at x{scale}")
    return np.stack([image[t : t + h, PAN_STEP * t : PAN_STEP * t + w] for t in range(frames)])


def codec_round_trip(lr: np.ndarray, crf: int, codec: str = "h264", fps: float = 25.0) -> np.ndarray:
    """LR frames as a client decodes them: encoded by `codec` at `crf` (4:2:0, the shipped stream) and decoded."""
    options = StreamOptions(codec=codec, crf=crf)
    options.check()
    with tempfile.TemporaryDirectory(prefix="stdo-prior-") as tmp:
        path = Path(tmp) / "lr.mp4"
        encode_stream(path, lr, fps, options)
        return read_video(path)[0]


def image_clip(path: Path, frames: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR, bicubic LR) of a photograph panned over `frames` frames."""
    hr = pan_clip(read_image(path), frames, scale)
    return hr, downscale_bicubic(hr, scale)
