"""stdo-deliver: a clip delivered within a byte budget, at the operating point of best played quality.

What a client downloads is the LR stream, the model updates (or whole models) and the model map (the plan is
derived from it). The carried prior alone (method prior) is a candidate like any other: an update ships only
where its played gain is worth its bytes, and each point says whether its bytes buy more than the same bytes
spent on the LR stream would (`rate_decisions`) and why it was or was not kept (`choose_point`).
The LR stream's CRF trades video bytes against what the models can restore, and which side of that trade pays
depends on the clip. So the operating point is measured, not guessed: for each candidate CRF (cheapest first)
the clip is clustered, the method trained on that stream's decoded frames (from the prior, by default), exported,
and played by the client's runtime against the HR frames; the point of best played PSNR whose delivered bytes fit
the budget is kept (points within `tie` of it are ties, and the cheapest of them is kept: a few hundredths of
a dB are run-to-run noise, bytes are not), and every point measured is reported beside it.

The scale is part of the operating point, as the rungs of an adaptive-bitrate ladder are resolutions as well as
bitrates: each reduced scale of `scale` (x4, x2: the carried prior of each) is measured at each CRF, and so is
its stream alone played by bicubic upsampling (a plain bundle, stdo.bundle.write_plain_bundle: no model to pay
for); scale 1 is the HR stream itself at the best CRF that fits the budget (the HR codec's own rate control
search), what users ship today. Where the HR stream beats every reduced scale, it is kept: a delivery is never
worse than the stream it replaces. Every point is scored on the same HR frames with the same border left out.

What needs no training (the stream alone, the prior alone) is also measured at the CRF that fills the budget
(`fill_budget`, found by bisection on the stream's bytes, as the HR rung's): the bytes an update costs are then
weighed against the same bytes spent on the stream by measurement, not only by the slope between the CRFs given.

The chosen point (its bundle in OUT/bundle, beside its RUN where it has one) replaces OUT only at the end; a
budget that not even the cheapest stream fits is refused before any training, and nothing is written.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from stdo.bundle import (MANIFEST, PLAIN_METHOD, bytes_per_variant, format_variant_bytes,
                         write_plain_bundle)
from stdo.clip import Crop
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.errors import StdoError
from stdo.export.pipeline import ExportOptions, export
from stdo.export.report import updates_line
from stdo.fileio import read_json, replace_dir, temp_dir_beside, write_bytes, write_json
from stdo.locks import stage_lock, sweep_leftovers
from stdo.options import CommaList, Parsed, flag
from stdo.play.pipeline import PlayOptions, play
from stdo.rundir import BUNDLE, HR_FRAMES, LR_STREAM, RUN_JSON, read_run_info
from stdo.runtimes import BACKENDS
from stdo.stream import CODECS, StreamOptions, encode_stream
from stdo.train.methods import ON_DEVICE_METHODS, REGISTRY
from stdo.train.loop import TrainConfig
from stdo.train.pipeline import TrainOptions, train
from stdo.progress import StageProgress

log = logging.getLogger(__name__)

POINTS = "points.json"  # in OUT: every operating point measured, and the one kept


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "kib": 1024, "mib": 1024 ** 2}
_RATES = {"kbit/s": 1, "kbps": 1, "mbit/s": 1000, "mbps": 1000}


@dataclass(frozen=True)
class Budget:
    """What a client may download: `bytes`, or `kbps` over the clip's duration; `text` as it was written."""

    text: str
    bytes: int | None = None
    kbps: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """'120000', '120KB', '1.5MB', '118KiB' -> bytes; '400kbit/s', '0.4Mbps' -> kbit/s."""
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z/]*)\s*", text)
        unit = match.group(2).lower() if match else None
        if match is None or (unit not in _UNITS and unit not in _RATES):
            raise StdoError(f"`budget` {text!r}: give bytes (120000, 120KB, 1.5MB, 118KiB) or a bitrate (400kbit/s)")
        value = float(match.group(1))
        if unit in _RATES:
            return cls(text.strip(), kbps=value * _RATES[unit])
        return cls(text.strip(), bytes=int(value * _UNITS[unit]))

    def __post_init__(self) -> None:
        if (self.bytes is None) == (self.kbps is None):
            raise StdoError("give the budget once: `budget` as bytes (120KB) or as a bitrate (400kbit/s)")
        if not (self.bytes if self.kbps is None else self.kbps) > 0:
            raise StdoError("`budget` must be above 0")

    def __str__(self) -> str:
        return self.text

    def over(self, duration_s: float) -> int:
        """The budget in bytes for a clip of this duration."""
        return self.bytes if self.bytes is not None else int(self.kbps * 1000 / 8 * duration_s)


@dataclass
class DeliverOptions:
    """What to deliver (cluster: its source and RUN settings), how (train, export), within what, played how.

    The run, out and method fields of the stage options are set per candidate; their other fields are the stages'
    own defaults, so `stdo-deliver` trains and exports as stdo-train and stdo-export do. Candidates are measured on
    the variant played (backend, precision); the kept one is exported once more with every format asked for."""

    cluster: ClusterOptions
    out: Path
    budget: Budget | None = flag(None, "What a client may download for the clip (LR stream + model updates + model "
                                 "map): bytes (120000, 120KB, 1.5MB) or a bitrate over the clip's duration "
                                 "(400kbit/s).", type=Parsed(Budget.parse, str, "budget"),
                                 metavar="BYTES|RATE", required=True)
    crf: tuple[int, ...] = flag((23, 27, 31), "LR stream CRFs to try; each is clustered, trained, exported and played.",
                                type=CommaList(item=int, example="23,27,31"), metavar="CRF,...")
    scale: tuple[int, ...] = flag((4, 2, 1), "The rungs tried: each reduced scale's LR stream (with the carried prior "
                                  "of that scale), and 1: the HR stream itself at the best CRF that fits --budget, kept "
                                  "where no reduced scale plays better.", type=CommaList(item=int, example="4,2,1"),
                                  metavar="SCALE,...")
    stream_alone: bool = True  # each reduced scale's stream alone (bicubic, no model) a point too; stdo-fleet, whose
    # later stages need a model, turns it off
    fill_budget: bool = flag(True, "Also play each reduced scale's stream at the lowest CRF that fits --budget, by "
                             "what needs no training (bicubic, the prior alone): an update then ships only where it "
                             "beats its bytes spent on the stream.", negatable=True)
    method: tuple[str, ...] = flag(("stdo", "prior"), "On-device methods tried at each CRF (stdo-train --method): stdo "
                                   "ships an update per chunk and the chunk map, jstdo one joint update, prior the "
                                   "carried prior alone (no update to pay for).", type=CommaList(ON_DEVICE_METHODS),
                                   metavar="METHOD,...")
    train: TrainOptions = field(default_factory=lambda: TrainOptions(run=Path(), config=TrainConfig(steps=800)))
    export: ExportOptions = field(default_factory=lambda: ExportOptions(run=Path(), quantize=("int8",)))
    backend: str = flag("onnxruntime", "The client runtime whose played frames are scored (stdo-play --backend).",
                        type=click.Choice(list(BACKENDS)))
    precision: str = flag("int8", "The variant played (stdo-play --precision).")
    every_client: bool = flag(False, "The budget holds for every --format's client at --precision (web, Android, "
                              "iOS): each candidate is exported in each and counted at its largest download; played "
                              "by --backend.")
    tie: float = flag(0.05, "Points within this many dB of the best played PSNR are ties: the cheapest of them is "
                      "kept.", metavar="DB")
    overwrite: bool = flag(False, "Replace OUT if stdo-deliver wrote it.")


def _check(o: DeliverOptions) -> StreamOptions:
    if o.budget is None:
        raise StdoError("give the budget: `budget` as bytes (120KB) or as a bitrate (400kbit/s)")
    stream = o.cluster.stream or StreamOptions()
    if stream.lossless or stream.bitrate is not None:
        raise StdoError("stdo-deliver chooses the LR stream's CRF: drop `lossless` and `bitrate`")
    lo, hi = CODECS[stream.codec].crf_range
    if not o.crf or any(not lo <= c <= hi for c in o.crf) or len(set(o.crf)) != len(o.crf):
        raise StdoError(f"`crf` must list distinct CRFs of {stream.codec}, each in {lo}..{hi}")
    if not o.method or len(set(o.method)) != len(o.method) or any(m not in ON_DEVICE_METHODS for m in o.method):
        raise StdoError(f"`method` must list distinct on-device methods ({', '.join(ON_DEVICE_METHODS)})")
    if not o.scale or len(set(o.scale)) != len(o.scale) or any(not 1 <= v <= 8 for v in o.scale) \
            or max(o.scale) < 2:
        raise StdoError(f"`scale` {','.join(map(str, o.scale))} must list distinct scales in 1..8, one of them 2 or "
                        "more (1: the HR stream itself)")
    if 1 in o.scale and not o.stream_alone:
        raise StdoError("`scale` 1 is the HR stream alone: it needs `stream_alone`")
    if o.cluster.lr_video is not None:
        raise StdoError("stdo-deliver encodes the LR stream at each CRF itself: drop `lr_video`")
    out = Path(o.out)
    if out.exists() and not (o.overwrite and (out / POINTS).is_file()):
        raise StdoError(f"{out} exists: give a new folder, or `overwrite` to replace one stdo-deliver wrote")
    if not o.tie >= 0:
        raise StdoError(f"`tie` {o.tie} must be 0 or more (dB)")
    if o.backend not in BACKENDS:
        raise StdoError(f"`backend` {o.backend} is unknown: use one of {', '.join(BACKENDS)}")
    if o.precision != "fp32" and (o.backend == "torch" or o.precision not in o.export.quantize):
        raise StdoError(f"`precision` {o.precision} is not exported for {o.backend}: add it to `quantize` "
                        "(torch plays fp32)")
    return stream


def _stage_progress(progress: StageProgress, prefix: str) -> StageProgress:
    """The stages' progress callbacks (stage, advance, total) under the candidate's name."""
    if progress is None:
        return None
    return lambda stage, advance, total=None: progress(f"{prefix} {stage}", advance, total)


def deliver(o: DeliverOptions, progress: StageProgress = None) -> dict:
    """Measure the candidate points, keep the best played PSNR within the budget in OUT; returns the points report."""
    stream = _check(o)
    out = Path(o.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with stage_lock(out.parent, f"delivery {out}", name=f".stdo-{out.name}.lock"):
        sweep_leftovers(out.parent, recursive=False, prefix=f".{out.name}.")  # of a killed stdo-deliver to OUT
        return _deliver_to(o, stream, out, progress)


def _measured(method: str) -> str:
    """The folder of a point's bundle as measured, beside the RUN's own bundle (the kept point's)."""
    return f"{BUNDLE}-{method}"


def _deliver_to(o: DeliverOptions, stream: StreamOptions, out: Path, progress: StageProgress) -> dict:
    work = temp_dir_beside(out)
    try:
        report = _deliver(o, stream, work, progress)
        kept = report["chosen"]
        folder = work / _folder(kept)
        if kept["method"] == PLAIN_METHOD:  # the stream alone: the bundle measured is the bundle shipped
            (folder / _measured(PLAIN_METHOD)).rename(folder / BUNDLE)
        for measured in folder.glob(_measured("*")):
            shutil.rmtree(measured)  # measured; the kept method's bundle is written whole below
        if kept["method"] != PLAIN_METHOD:
            played = (BACKENDS[o.backend], o.precision)
            played = played if played[0] in o.export.format else None
            export(replace(o.export, run=folder, method=kept["method"], out=folder / BUNDLE, recommended=played,
                           db_per_kb=kept.get("db_per_kb", 0.0)),
                   _stage_progress(progress, "kept"))  # clients play by default the variant the points counted
        report["clients"] = bytes_per_variant(read_json(folder / BUNDLE / MANIFEST))  # each client's download
        write_json(folder / POINTS, report)
        write_bytes(folder / "points.md", format_points_md(report).encode())
        replace_dir(folder, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["out"] = str(out)
    return report


def _folder(point: dict) -> str:
    """The point's folder in the work folder (a RUN for a reduced scale; the HR stream's bundle for scale 1)."""
    return f"x{point['scale']}-crf{point['crf']}"


def _measured_variant(o: DeliverOptions) -> dict:
    """The export options of what each candidate is scored and counted with: the variant the client plays, and with
    `every_client` that precision in every format exported (a client of each platform)."""
    played = BACKENDS[o.backend] if o.backend != "torch" else "onnx"
    others = tuple(f for f in o.export.format if f != "torch") if o.every_client else ()
    return {"format": tuple(dict.fromkeys((played, *others))),
            "quantize": (o.precision,) if o.precision != "fp32" else ()}


def _largest_download(bundle: Path, precision: str) -> tuple[str, dict] | None:
    """The client variant at `precision` whose download is the largest (name, bytes), of a bundle with models."""
    per = {name: b for name, b in bytes_per_variant(read_json(bundle / MANIFEST)).items()
           if name.split()[1] == precision}
    return max(per.items(), key=lambda item: item[1]["total"]) if per else None


@dataclass
class _Measuring:
    """What every point of one delivery shares while it is measured: the options, the work folder, the border every
    point is scored without, the points so far, and what the first stream measured tells (the budget in bytes, the
    HR frames, fps, the crop every scale shares)."""

    o: DeliverOptions
    stream: StreamOptions
    work: Path
    shave: int
    progress: StageProgress
    points: list[dict] = field(default_factory=list)
    budget: int | None = None
    hr: Path | None = None
    fps: float | None = None
    crop: Crop | None = None


def _deliver(o: DeliverOptions, stream: StreamOptions, work: Path, progress: StageProgress) -> dict:
    m = _Measuring(o, stream, work, shave=max(o.scale), progress=progress)  # every point: one border left out
    untrained = tuple(method for method in o.method if not REGISTRY[method].trains)
    trained = tuple(method for method in o.method if REGISTRY[method].trains)
    for scale in sorted((s for s in o.scale if s > 1), reverse=True):  # the smallest streams first
        # the cheapest LR stream first (it says whether the budget can hold); what needs no training at every CRF
        # first, so that the stream's own slope prices each update when the trained methods are exported
        for methods in (untrained, trained):
            for crf in sorted(o.crf, reverse=True):
                m.points += _measure_stream(m, scale, crf, methods, refuse=m.budget is None and 1 not in o.scale)
        if o.fill_budget and (o.stream_alone or untrained):
            side = max((p["total"] - p["video"] for p in m.points if p["method"] in untrained and "total" in p),
                       default=0)
            crf = _filling_crf(m, scale, m.budget - side)
            while crf is not None and crf not in o.crf:
                filled = _measure_stream(m, scale, crf, untrained, refuse=False, fills=True)
                if filled[0]["video"] <= m.budget - side or crf == CODECS[stream.codec].crf_range[1]:
                    m.points += filled
                    break
                shutil.rmtree(work / f"x{scale}-crf{crf}")  # the encoder's bytes vary by a few: one CRF higher
                crf += 1
    points, budget = m.points, m.budget
    for p in points:
        if "total" not in p:
            p.update(within_budget=False, note="LR stream alone over budget: not played")
    if 1 in o.scale:
        points.append(_hr_stream(m))
    if not any(p.get("within_budget") for p in points):
        smallest = min((p["total"] for p in points if "total" in p), default=min(p["video"] for p in points))
        raise StdoError(f"`budget` {budget:,} bytes is below the smallest bundle this clip makes ({smallest:,} bytes "
                        "with its models): raise `budget` or add a higher `crf` (nothing written)")
    rate_decisions(points)
    chosen = choose_point(points, o.tie)
    return {"budget": budget, "backend": o.backend, "precision": o.precision, "every_client": o.every_client,
            "codec": stream.codec, "tie_db": o.tie,
            "scales": list(o.scale), "shave": m.shave,
            "points": sorted(points, key=lambda p: (-p["scale"], p["crf"], p["method"])), "chosen": chosen}


def _measure_stream(m: _Measuring, scale: int, crf: int, methods: tuple[str, ...], refuse: bool,
                    fills: bool = False) -> list[dict]:
    """The points of one LR stream (scale, CRF): clustered the first time it is
    measured (with its stream alone), then each method played. A trained method's updates ship where they pay at
    the stream's own slope there (measured by the prior alone between CRFs). The first stream measured also gives
    the budget (a bitrate needs the clip's duration), the HR frames every point is scored on and the crop every
    scale shares."""
    o = m.o
    run = m.work / f"x{scale}-crf{crf}"
    stage = _stage_progress(m.progress, f"x{scale} CRF {crf}")
    first = not (run / RUN_JSON).is_file()
    if first:  # every scale on the HR frames of the first: its size is a multiple of every smaller scale's unit
        cluster(replace(o.cluster, run=run, scale=scale, crop=m.crop or o.cluster.crop,
                        stream=replace(m.stream, crf=crf), overwrite=True), stage)
    if m.budget is None:
        info = read_run_info(run)
        m.budget, m.hr, m.fps = o.budget.over(info.duration_s), run / HR_FRAMES, info.fps
        x, y = (o.cluster.crop.x, o.cluster.crop.y) if o.cluster.crop else (0, 0)
        m.crop = Crop(*info["hr_size"], x, y)
    video = (run / LR_STREAM).stat().st_size
    if refuse and video >= m.budget:
        raise StdoError(f"`budget` {m.budget:,} bytes is below the smallest bundle this clip makes: its LR "
                        f"stream alone is {video:,} bytes at x{scale} CRF {crf}; raise `budget` or add a "
                        "higher `crf` (nothing written)")
    points = []
    extra = {"fills": True} if fills else {}
    if o.stream_alone and first:
        plain = {"scale": scale, "crf": crf, "method": PLAIN_METHOD, "video": video, **extra}
        points.append(plain)
        if video < m.budget:
            write_plain_bundle(run / _measured(PLAIN_METHOD), run / LR_STREAM, scale=scale)
            _score(plain, run / _measured(PLAIN_METHOD), o, m.hr, m.shave, m.budget, stage)
    slope = stream_slope(m.points, crf, scale)
    for method in methods:
        point = {"scale": scale, "crf": crf, "method": method, "video": video, **extra}
        points.append(point)
        if video >= m.budget:
            continue
        bundle = run / _measured(method)
        train(replace(o.train, run=run, method=method, restart=True),
              progress=(lambda job, step, steps, loss, psnr: stage(f"{method} train", 1, None)) if stage else None)
        if REGISTRY[method].trains and not o.export.ship_all:
            point["db_per_kb"] = (slope or 0.0) * 1024  # what its updates must buy (the kept point's export too)
        exported = export(replace(o.export, run=run, method=method, out=bundle, db_per_kb=point.get("db_per_kb", 0.0),
                                  **_measured_variant(o)), stage)
        if exported.get("updates"):
            point["updates"] = exported["updates"]["models"]
        _score(point, bundle, o, m.hr, m.shave, m.budget, stage)
    return points


def _lowest_crf_within(frames, fps: float, stream: StreamOptions, limit: int, folder: Path,
                       progress: StageProgress, stage: str) -> int | None:
    """The lowest CRF (the best quality) at which `frames` code within `limit` bytes, by bisection (bytes fall as
    the CRF rises); None where not even the highest fits. The streams tried stay in `folder` as crf{N}.mp4."""
    lo, hi = CODECS[stream.codec].crf_range
    folder.mkdir(parents=True, exist_ok=True)
    sizes: dict[int, int] = {}

    def size(crf: int) -> int:
        if crf not in sizes:
            encode_stream(folder / f"crf{crf}.mp4", iter(frames), fps, replace(stream, crf=crf))
            sizes[crf] = (folder / f"crf{crf}.mp4").stat().st_size
            if progress:
                progress(stage, 1, None)
        return sizes[crf]

    if size(hi) > limit:
        return None
    while lo < hi:  # invariant: size(hi) fits
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if size(mid) <= limit else (mid + 1, hi)
    return hi


def _filling_crf(m: _Measuring, scale: int, limit: int) -> int | None:
    """The lowest CRF whose LR stream at `scale` fits `limit` bytes: the clip's LR frames (as stdo-cluster makes
    them) coded at the CRFs the bisection tries."""
    from stdo.clip import Cut, load_clip

    clip = load_clip(m.o.cluster.source, scale, Cut(m.o.cluster.start, m.o.cluster.frames, m.crop))
    return _lowest_crf_within(clip.lr, m.fps, m.stream, limit, m.work / f"x{scale}-fill", m.progress,
                              f"x{scale} stream crf")


def _score(point: dict, bundle: Path, o: DeliverOptions, hr: Path, shave: int, budget: int,
           progress: StageProgress) -> None:
    """Play the point's bundle as the client would, against the HR frames; its bytes and quality into `point`."""
    played = play(PlayOptions(bundle=bundle, backend=o.backend, precision=o.precision, hr=hr, shave=shave,
                              threads=o.export.threads, priors=o.export.priors), progress)
    delivered = played["delivered"]
    largest = _largest_download(bundle, o.precision) if o.every_client and point["method"] != PLAIN_METHOD else None
    if largest is not None and largest[1]["total"] > delivered["total"]:  # counted as its largest client gets it
        point["counted"] = largest[0]
        delivered = largest[1]
    point.update(bytes=delivered, total=delivered["total"], psnr=played["psnr"]["model"],
                 psnr_y=played["psnr"]["model_y"], ssim=played["psnr"]["model_ssim"],
                 bicubic_psnr=played["psnr"]["bicubic"], prior_psnr=played["psnr"].get("prior"),
                 within_budget=delivered["total"] <= budget)
    log.info("x%d CRF %d %s: %d bytes, %.3f dB", point["scale"], point["crf"], point["method"], delivered["total"],
             point["psnr"])


def _hr_stream(m: _Measuring) -> dict:
    """Scale 1: the HR stream itself at the lowest CRF (the best quality) whose bytes fit the budget, found by
    bisection (bytes fall as the CRF rises), played as a plain bundle."""
    import numpy as np

    frames = np.load(m.hr, mmap_mode="r")
    streams = m.work / "x1"
    crf = _lowest_crf_within(frames, m.fps, m.stream, m.budget, streams, m.progress, "x1 HR stream crf")
    if crf is None:
        hi = CODECS[m.stream.codec].crf_range[1]
        return {"scale": 1, "crf": hi, "method": PLAIN_METHOD, "video": (streams / f"crf{hi}.mp4").stat().st_size,
                "within_budget": False, "note": f"the HR stream alone is over budget even at CRF {hi}"}
    point = {"scale": 1, "crf": crf, "method": PLAIN_METHOD, "video": (streams / f"crf{crf}.mp4").stat().st_size}
    folder = m.work / _folder(point)
    (folder / "frames").mkdir(parents=True)
    _link_or_copy(m.hr, folder / HR_FRAMES)  # the HR frames beside the bundle, as a kept RUN has them
    write_plain_bundle(folder / _measured(PLAIN_METHOD), streams / f"crf{crf}.mp4", scale=1)
    _score(point, folder / _measured(PLAIN_METHOD), m.o, m.hr, m.shave, m.budget, _stage_progress(m.progress, "x1"))
    return point


def _link_or_copy(source: Path, target: Path) -> None:
    import os

    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def stream_slope(points: list[dict], crf: int, scale: int | None = None) -> float | None:
    """dB per byte the LR stream of `scale` itself buys at `crf`: the carried prior's played PSNR against the
    video's bytes, between `crf` and the next CRF measured below it (or above it, at the lowest CRF); None with one
    CRF."""
    alone = {p["crf"]: (p["video"], p["prior_psnr"]) for p in points
             if p.get("prior_psnr") is not None and p.get("scale") == scale}
    crfs = sorted(alone)
    if crf not in alone or len(crfs) < 2:
        return None
    i = crfs.index(crf)
    lower, upper = (crfs[i - 1], crf) if i > 0 else (crf, crfs[1])
    (b0, q0), (b1, q1) = alone[lower], alone[upper]
    return max(q0 - q1, 0.0) / (b0 - b1) if b0 != b1 else None


def rate_decisions(points: list[dict]) -> None:
    """Add to each measured point what its models are worth at its rate: the played PSNR over the carried prior
    alone on the same stream (`over_prior_db`), the bytes beside the stream that buy it (`side_bytes`: updates and
    model map), and `pays`: whether those bytes buy more than the same bytes spent on the stream would
    (`stream_db_per_byte`, the stream's own slope there; with one CRF, any gain pays)."""
    slopes = {(p.get("scale"), p["crf"]): stream_slope(points, p["crf"], p.get("scale")) for p in points}
    for p in points:
        if "total" not in p or p.get("prior_psnr") is None:
            continue
        side = p["total"] - p["bytes"]["video"]
        slope = slopes[p.get("scale"), p["crf"]]
        gain = p["psnr"] - p["prior_psnr"]
        p.update(over_prior_db=gain, side_bytes=side, stream_db_per_byte=slope,
                 pays=gain > 0 and (slope is None or gain >= slope * side))


def choose_point(points: list[dict], tie_db: float) -> dict:
    """The point kept: the best played PSNR within the budget; points within `tie_db` of it are ties, and the
    cheapest of them is kept. The carried prior alone is a point too (method prior), so an update that does not buy
    more than `tie_db` is not shipped. Each point's `why` says how the choice saw it."""
    fitting = [p for p in points if p.get("within_budget")]
    best = max(p["psnr"] for p in fitting)
    chosen = min((p for p in fitting if p["psnr"] >= best - tie_db), key=lambda p: (p["total"], -p["psnr"]))
    for p in points:
        if p is chosen:
            p["why"] = "kept: the best played PSNR within the budget" + (
                f" (the cheapest point within {tie_db} dB of {best:.3f})" if p["psnr"] < best else "")
        elif not p.get("within_budget"):
            p["why"] = p.get("note") or "over the budget"
        elif p["psnr"] >= best - tie_db:
            p["why"] = f"a tie with the kept point, {p['total'] - chosen['total']:+,} bytes"
        else:
            p["why"] = f"{p['psnr'] - chosen['psnr']:+.3f} dB against the kept point"
    return chosen


def _is_kept(report: dict, p: dict) -> bool:
    return _key(p) == _key(report["chosen"])


def _key(p: dict) -> tuple:
    return p.get("scale"), p["crf"], p["method"]


def _rung(p: dict) -> str:
    """The point's scale as a ladder rung: x4, x2, or the HR stream itself."""
    return "HR" if p.get("scale") == 1 else f"x{p.get('scale')}"


def _what(p: dict) -> str:
    """The point's method, or what a plain bundle plays."""
    if p["method"] != PLAIN_METHOD:
        return p["method"]
    return "HR stream" if p.get("scale") == 1 else "bicubic"


def _shown(points: list[dict]) -> list[dict]:
    """The points as tables show them: the points of one stream that were not played (its LR stream alone is
    over the budget) become one row, method "all", since they differ in nothing else."""
    shown, seen = [], set()
    for p in points:
        if "total" in p:
            shown.append(p)
        elif (p["scale"], p["crf"]) not in seen:
            seen.add((p["scale"], p["crf"]))
            shown.append({**p, "method": "all"})
    return shown


def format_points(report: dict) -> list[str]:
    """The operating points measured as aligned text lines; the kept one marked."""
    counted = ", bytes of each point's largest client download" if report.get("every_client") else ""
    lines = [f"budget {report['budget']:,} bytes, played by {report['backend']} {report['precision']}{counted}, "
             f"{report['codec']} streams, PSNR with {report.get('shave', '-')} border pixels left out",
             f"{'scale':>5} {'crf':>4} {'method':>9} {'video':>9} {'models':>8} {'map':>8} {'total':>9} {'PSNR dB':>8} "
             f"{'bicubic':>8} {'prior':>8} {'pays':>5}  fits"]
    for p in _shown(report["points"]):
        if "total" not in p:
            lines.append(f"{_rung(p):>5} {p['crf']:>4} {_what(p):>9} {p['video']:>9,} {'-':>8} {'-':>8} {'-':>9} "
                         f"{'-':>8} {'-':>8} {'-':>8} {'-':>5}  no ({p['note']})")
            continue
        b = p["bytes"]
        lines.append(f"{_rung(p):>5} {p['crf']:>4} {_what(p):>9} {b['video']:>9,} {b['models']:>8,} "
                     f"{b['model_map']:>8,} {p['total']:>9,} {p['psnr']:>8.3f} {p['bicubic_psnr']:>8.3f} "
                     f"{_db(p.get('prior_psnr')):>8} {_pays(p):>5}  "
                     f"{'yes' if p['within_budget'] else 'no'}{'  <- kept' if _is_kept(report, p) else ''}")
    fills = sorted({(p["scale"], p["crf"]) for p in report["points"] if p.get("fills")}, reverse=True)
    if fills:
        lines.append(", ".join(f"x{scale} CRF {crf}" for scale, crf in fills) + ": the lowest CRF whose stream fits "
                     "the budget, played by what needs no training")
    return lines


def _pays(p: dict) -> str:
    method = REGISTRY.get(p["method"])
    return "-" if p.get("pays") is None or method is None or not method.trains else "yes" if p["pays"] else "no"


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def kept_line(report: dict, out: Path) -> str:
    """The kept point: its bytes, its played PSNR and its gains over bicubic and over the carried prior alone."""
    kept = report["chosen"]
    where = f"bundle in {Path(out) / BUNDLE}, every point in {Path(out) / 'points.md'}"
    if kept["scale"] == 1:
        return (f"kept the HR stream itself, CRF {kept['crf']}: {kept['total']:,} bytes, {kept['psnr']:.3f} dB "
                f"(no reduced scale played better within the budget); {where}")
    if kept.get("prior_psnr") is None:
        over_prior = ""
    elif not REGISTRY[kept["method"]].trains:
        over_prior = "; the carried prior alone, no update"
    else:
        over_prior = f", {kept['psnr'] - kept['prior_psnr']:+.2f} dB over the prior alone"
    return (f"kept x{kept['scale']} CRF {kept['crf']} {_what(kept)}: {kept['total']:,} bytes, {kept['psnr']:.3f} dB "
            f"({kept['psnr'] - kept['bicubic_psnr']:+.2f} dB over bicubic of its stream{over_prior}); {where}")


def format_points_md(report: dict) -> str:
    rows = ["| scale | CRF | method | video | models | model map | total bytes | PSNR (dB) | bicubic (dB) "
            "| prior alone (dB) | over the prior | pays | why |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in _shown(report["points"]):
        if "total" not in p:
            rows.append(f"| {_rung(p)} | {p['crf']} | {_what(p)} | {p['video']:,} | - | - | - | - | - | - | - | - | "
                        f"{p.get('why', p['note'])} |")
            continue
        b = p["bytes"]
        kept = (" (fills the budget)" if p.get("fills") else "") + (" (kept)" if _is_kept(report, p) else "")
        counted = f" ({p['counted']})" if p.get("counted") else ""
        rows.append(f"| {_rung(p)} | {p['crf']}{kept} | {_what(p)} | {b['video']:,} | {b['models']:,}{counted} | "
                    f"{b['model_map']:,} | {p['total']:,} | {p['psnr']:.3f} | {p['bicubic_psnr']:.3f} | "
                    f"{_db(p.get('prior_psnr'))} | {_gain(p)} | {_pays(p)} | {p.get('why', '')} |")
    return (f"# Operating points within {report['budget']:,} bytes\n\nPlayed by {report['backend']} "
            f"{report['precision']}; {report['codec']} streams; PSNR against the same HR frames with "
            f"{report.get('shave', '-')} border pixels left out at every scale. Each reduced scale (x4, x2) is tried "
            "with its stream alone upsampled by bicubic (no model to pay for) and with each method, and at the lowest "
            "CRF whose stream fits the budget with what needs no training (bicubic, the prior alone); HR is the HR "
            "stream itself at the lowest CRF that fits the budget. An update pays when the dB it adds over the "
            "carried prior alone are at least what its bytes would buy spent on the LR stream (the stream's own "
            "slope between the CRFs measured); the kept point is the best played PSNR within the budget, the "
            f"cheapest of those within {report['tie_db']} dB of it. Within a point, each trained model's update ships "
            "only where it pays at that slope; the prior serves the others.\n\n" + "\n".join(rows) + "\n"
            + "".join(f"\n- {_rung(p)} CRF {p['crf']} {p['method']}: "
                      + updates_line({"db_per_kb": p["db_per_kb"], "models": p["updates"]}).removeprefix("updates  ")
                      for p in report["points"] if p.get("updates"))
            + (f"\n\nThe kept bundle, per client: {format_variant_bytes(report['clients'])}.\n" if report.get("clients")
               else "\n"))


def _gain(p: dict) -> str:
    if p.get("over_prior_db") is None:
        return "-"
    return f"{p['over_prior_db']:+.3f} dB for {p['side_bytes']:,} B"
