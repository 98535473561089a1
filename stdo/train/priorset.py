"""The prior's training set: photographs made into short coded clips, built once into a folder.

A prior is carried by every client and runs on whatever stream it receives, so it must learn the LR a
client really decodes: each clip is a window moving across a photograph (a random pan, or still for
calm scenes), downscaled by the shipped downscaler (stdo.resample) and then, for most clips, coded as
a video (H.264 or HEVC at a random CRF, an intra frame then predicted ones) and decoded as a client
decodes it; the rest stays clean bicubic LR. Photographs are first shrunk by a random factor (a sharp,
low-noise HR, at several sizes of the same scene), and every clip has its own codec, CRF and motion.

The folder holds `hr.npy` [N, W, W, 3] uint8, `lr_x{s}.npy` [N, W/s, W/s, 3] for each scale (each scale's
LR coded on its own) and `clips.json` (each clip's photograph, size, motion, codec and CRF). Frames of a
clip are consecutive; the folder is written atomically, and a build with the same options is reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stdo.errors import StdoError
from stdo.fileio import read_json, sha256_of, staged_dir
from stdo.resample import downscale_bicubic
from stdo.stream import CODECS
from stdo.train.priordata import codec_round_trip
from stdo.video import read_image

log = logging.getLogger(__name__)

MANIFEST = "clips.json"


@dataclass(frozen=True)
class PriorSetOptions:
    scales: tuple[int, ...] = (4, 2)
    window: int = 256  # HR side of a clip's frames (a multiple of 2·scale for 4:2:0 LR)
    frames: int = 6  # per clip: one intra frame, then predicted ones
    clips_per_window: float = 0.5  # clips per window-sized area of each shrunk photograph
    max_clips: int = 16  # per photograph and size
    sizes: int = 3  # shrunk sizes per photograph
    max_side: int = 1600  # the shorter side of the largest size
    still: float = 0.3  # share of clips without motion
    speed: float = 4.0  # HR pixels per frame, at most, along each axis
    clean: float = 0.15  # share of clips left as clean bicubic LR
    codecs: tuple[str, ...] = ("h264", "hevc")
    crf: tuple[int, int] = (18, 40)  # CRF range, both ends included
    seed: int = 0

    def check(self) -> None:
        for s in self.scales:
            if self.window % (2 * s):
                raise StdoError(f"`window` {self.window} is not a multiple of 2·{s}: give a multiple of {2 * max(self.scales)}")
        if self.frames < 1 or self.sizes < 1 or self.max_clips < 1:
            raise StdoError("`frames`, `sizes` and `max_clips` must be at least 1")
        if not 0 <= self.still <= 1 or not 0 <= self.clean <= 1:
            raise StdoError("`still` and `clean` are shares between 0 and 1")


def _shrink(image: np.ndarray, short: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    if short >= min(h, w):
        return image
    f = short / min(h, w)
    return np.asarray(Image.fromarray(image).resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS))


def _clip_windows(image: np.ndarray, o: PriorSetOptions, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """[frames, W, W, 3]: a window moving by a random velocity (or still) across the image."""
    h, w = image.shape[:2]
    still = rng.random() < o.still
    v = np.zeros(2) if still else rng.uniform(-o.speed, o.speed, 2)
    lo = np.maximum(0, -v * (o.frames - 1))
    hi = np.array([h, w]) - o.window - np.maximum(0, v * (o.frames - 1))
    if (hi < lo).any():
        v[:], lo, hi = 0, np.zeros(2), np.array([h, w]) - o.window
    start = lo + rng.random(2) * (hi - lo)
    frames = []
    for t in range(o.frames):
        y, x = np.round(start + v * t).astype(int)
        frames.append(image[y : y + o.window, x : x + o.window])
    return np.stack(frames), {"velocity": [round(float(v[1]), 2), round(float(v[0]), 2)]}


HEVC_MIN_SIDE = 64  # LR smaller than one HEVC coding unit is coded by H.264: x265's CU-tree corrupted the heap on
# such frames (stdo.stream now turns it off there); kept so that a set is built as the committed training state's was


def _degrade(lr: np.ndarray, o: PriorSetOptions, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if rng.random() < o.clean:
        return lr, {"codec": None, "crf": None}
    small = min(lr.shape[1:3]) < HEVC_MIN_SIDE
    codec = str(rng.choice([c for c in o.codecs if not (small and CODECS[c].small_frame_params)] or ["h264"]))
    crf = int(rng.integers(o.crf[0], o.crf[1] + 1))
    return codec_round_trip(lr, crf, codec), {"codec": codec, "crf": crf}


def _signature(images: list[Path], o: PriorSetOptions) -> dict:
    """What the set is made of, as clips.json stores it (JSON: tuples come back as lists)."""
    return json.loads(json.dumps({"options": asdict(o), "images": [sha256_of(p) for p in images]}))


def is_prior_set(path: Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def build_prior_set(images: list[Path], out: Path, o: PriorSetOptions = PriorSetOptions()) -> Path:
    """Build the set from `images` into `out` (reused when it was built from the same images and options)."""
    o.check()
    if not images:
        raise StdoError("give at least one photograph to build the prior's set from")
    out = Path(out)
    signature = _signature(images, o)
    if is_prior_set(out) and read_json(out / MANIFEST).get("signature") == signature:
        return out
    rng = np.random.default_rng(o.seed)
    hr_clips, lr_clips, clips = [], {s: [] for s in o.scales}, []
    for path in images:
        image = read_image(path)
        short = min(image.shape[:2])
        smallest = o.window + int(np.ceil(o.speed * (o.frames - 1))) + 1
        if short < o.window:
            log.warning("%s: %d pixels on its shorter side, below the window of %d: skipped", path.name, short, o.window)
            continue
        top = min(short, o.max_side)
        for size in np.linspace(max(smallest, top / 3), top, o.sizes) if top > smallest else [short]:
            shrunk = _shrink(image, int(size))
            area = shrunk.shape[0] * shrunk.shape[1]
            count = int(np.clip(round(o.clips_per_window * area / o.window**2), 1, o.max_clips))
            for _ in range(count):
                hr, motion = _clip_windows(shrunk, o, rng)
                hr_clips.append(hr)
                facts = {"image": path.name, "size": list(shrunk.shape[1::-1]), **motion}
                for s in o.scales:
                    lr, coding = _degrade(downscale_bicubic(hr, s), o, rng)
                    lr_clips[s].append(lr)
                    facts[f"x{s}"] = coding
                clips.append(facts)
        log.info("%s: %d clips so far", path.name, len(clips))
    if not clips:
        raise StdoError(f"no photograph is at least {o.window} pixels on its shorter side: give larger ones")
    with staged_dir(out) as tmp:
        np.save(tmp / "hr.npy", np.concatenate(hr_clips))
        for s in o.scales:
            np.save(tmp / f"lr_x{s}.npy", np.concatenate(lr_clips[s]))
        (tmp / MANIFEST).write_text(json.dumps({"signature": signature, "frames": o.frames, "clips": clips}))
    return out


def open_prior_set(path: Path, scale: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(HR, LR at x`scale`, manifest) of a built set, the arrays memory-mapped."""
    path = Path(path)
    lr = path / f"lr_x{scale}.npy"
    if not lr.is_file():
        raise StdoError(f"{path} holds no LR at x{scale}: build it with that scale")
    return np.load(path / "hr.npy", mmap_mode="r"), np.load(lr, mmap_mode="r"), read_json(path / MANIFEST)


def main() -> None:
    import click

    from stdo.clitools import setup_logging, stdo_command

    @stdo_command("priorset")
    @click.argument("out", type=click.Path(path_type=Path))
    @click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--scales", default="4,2", show_default=True, help="The scales whose LR the set holds.")
    @click.option("--sizes", type=click.IntRange(1), default=PriorSetOptions.sizes, show_default=True,
                  help="Shrunk sizes per photograph.")
    @click.option("--max-clips", type=click.IntRange(1), default=PriorSetOptions.max_clips, show_default=True,
                  help="Clips per photograph and size, at most.")
    @click.option("--seed", type=int, default=PriorSetOptions.seed, show_default=True, help="Seed.")
    @click.option("-v", "--verbose", count=True, help="More logging.")
    def command(out, images, scales, sizes, max_clips, seed, verbose):
        """Build a prior set in OUT from IMAGES: short clips panned across the photographs (or still), their LR
        coded by H.264 or HEVC at random CRFs (stdo-general reads it as a source; a build with the same
        photographs and options is reused)."""
        setup_logging(verbose)
        try:
            parsed = tuple(int(v) for v in scales.split(","))
        except ValueError:
            raise StdoError(f"`scales` {scales!r}: give whole scales separated by commas, e.g. 4,2") from None
        options = PriorSetOptions(scales=parsed, sizes=sizes, max_clips=max_clips, seed=seed)
        click.echo(build_prior_set(list(images), out, options))

    command(prog_name="python -m stdo.train.priorset")


if __name__ == "__main__":
    main()
