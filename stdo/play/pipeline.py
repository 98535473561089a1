"""stdo-play as a library call: bundle -> SR mp4 or PNG frames, PSNR against HR, timings.

Outputs are written atomically: an mp4 goes to a temp file, PNG frames to a temp folder,
and either replaces the destination only when every frame is written. A destination
that exists is refused unless `overwrite`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator

import click
import numpy as np
import torch
from PIL import Image

from stdo.background import BackgroundWriter, prefetch
from stdo.errors import StdoError
from stdo.fileio import staged_dir, write_bytes, write_json
from stdo.locks import stage_lock, sweep_leftovers
from stdo.scores import QualityScores
from stdo.play.player import Player, lr_stream
from stdo.play.report import format_markdown, plot_psnr
from stdo.ratequality import bytes_at_psnr, hr_stream_at_psnr
from stdo.stream import CODECS, StreamOptions, StreamWriter
from stdo.resample import as_nchw, upscale_bicubic
from stdo.infer import Runner
from stdo.options import CommaList, flag, parse_list
from stdo.runtimes import BACKENDS, FORMATS as RUNTIME_FORMATS, PRECISIONS, open_runner
from stdo.video import iter_frames
from stdo.progress import StageProgress



@dataclass
class PlayOptions:
    bundle: Path
    backend: str = flag("onnxruntime", "torch runs models/*.pt, onnxruntime the .onnx files, litert the .tflite "
                        "files.", type=click.Choice(list(BACKENDS)))
    precision: str = flag("fp32", "Which of the bundle's variants to run (int8/fp16 where exported).",
                          type=click.Choice(PRECISIONS))
    out: Path | None = flag(None, "Write the SR video: an .mp4 file (H.264), or a folder (no suffix) of PNG frames.",
                            type=click.Path(path_type=Path))
    compare: bool = flag(False, "Write bicubic | stdo side by side instead of stdo alone.")
    hr: Path | None = flag(None, "HR reference (video, frame folder or RUN/frames/hr.npy): report PSNR per frame and "
                           "in total.", type=click.Path(path_type=Path))
    lr_video: Path | None = flag(None, "Play this LR video instead of the bundle's own (it must match the bundle).",
                                 type=click.Path(path_type=Path))
    report: Path | None = flag(None, "Write the report: .json (per-frame PSNR) or .md.", type=click.Path(path_type=Path))
    plot: Path | None = flag(None, "PNG plot of PSNR per frame, bicubic vs stdo (needs --hr).",
                             type=click.Path(path_type=Path))
    shave: int | None = flag(None, "Border pixels PSNR leaves out (0..64) [default: the bundle's scale]; stdo-deliver "
                             "scores every scale with the largest one's.", type=int, metavar="PIXELS")
    rate: bool = flag(False, "With --hr: also encode the HR frames with each --rate-codec (yuv420p, CRF search) to "
                      "find the cheapest HR stream reaching the models' RGB PSNR, and report its bytes beside the "
                      "bundle's (LR video + the models played + model map).")
    rate_codec: tuple[str, ...] = flag(("h264", "hevc"), f"The HR streams --rate compares with: {', '.join(CODECS)}.",
                                       type=CommaList(tuple(CODECS)), metavar="CODEC[,CODEC]")
    overwrite: bool = flag(False, "Replace --out/--report/--plot files that exist.")
    out_crf: int = flag(18, "H.264 CRF of the output mp4 (yuv420p, BT.709 limited range, tagged); 0 = lossless RGB "
                        "H.264.")
    out_preset: str = flag("veryfast", "x264 preset of the output mp4 (ultrafast .. placebo): slower presets make "
                           "smaller files and take the cores from inference while playing.")
    frames_per_batch: int = flag(4, "Frames per inference batch.")
    threads: int | None = flag(None, "Threads of onnxruntime / LiteRT.", type=click.IntRange(min=1))
    priors: Path | None = flag(None, "The priors this client carries, which a bundle's coded model updates are "
                               "rebuilt from [default: stdo's own].", type=click.Path(path_type=Path, file_okay=False))


def _check(o: PlayOptions) -> None:
    if o.shave is not None and not 0 <= o.shave <= 64:
        raise StdoError(f"`shave` {o.shave} must be in 0..64 (border pixels left out of PSNR)")
    if o.frames_per_batch <= 0:
        raise StdoError(f"`frames_per_batch` {o.frames_per_batch} must be above 0")
    check_output_stream(o.out_crf, o.out_preset)
    for path, what in ((o.out, "`out`"), (o.report, "`report`"), (o.plot, "`plot`")):
        if path is not None and Path(path).exists() and not o.overwrite:
            raise StdoError(f"{what} {path} exists: give another path, or `overwrite` to replace it")
    if o.out is not None and Path(o.out).is_dir() and not (Path(o.out) / PNG_MARKER).is_file():
        raise StdoError(f"`out` {o.out} is a folder stdo-play did not write: give another folder "
                        "(`overwrite` replaces only stdo-play's own frame folders)")
    if o.out is not None and Path(o.out).suffix and Path(o.out).suffix.lower() != ".mp4":
        raise StdoError(f"`out` {o.out}: give an .mp4 file, or a folder (no suffix) for PNG frames")
    if o.hr is not None and not Path(o.hr).exists():
        raise StdoError(f"`hr` {o.hr} does not exist: give the HR video, frame folder or RUN/frames/hr.npy")
    if o.plot is not None and o.hr is None:
        raise StdoError("`plot` needs `hr`: PSNR per frame is measured against the HR frames")
    if o.rate and o.hr is None:
        raise StdoError("`rate` needs `hr`: the HR stream is encoded from the HR frames and measured against them")
    parse_list(o.rate_codec, tuple(CODECS), "`rate_codec`")
    if not o.rate_codec:
        raise StdoError(f"`rate_codec` is empty: give one or more of {', '.join(CODECS)}")
    if o.report is not None and Path(o.report).suffix not in (".json", ".md"):
        raise StdoError(f"`report` {o.report}: give a .json or .md file")
    if o.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise StdoError("`plot` needs matplotlib: pip install 'stdo[plot]'") from None


PNG_MARKER = ".stdo-play"  # in a frame folder stdo-play wrote: --overwrite replaces only such folders


class _PngFolder:
    """PNG frames into a temp folder that replaces `path` when closed without error."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._staged = staged_dir(self.path)
        self.tmp = self._staged.__enter__()
        (self.tmp / PNG_MARKER).write_text("frames written by stdo-play; --overwrite may replace this folder\n")
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        self.count += 1
        Image.fromarray(frame).save(self.tmp / f"{self.count:06d}.png", compress_level=1)

    def __enter__(self) -> "_PngFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._staged.__exit__(exc_type, exc, tb)  # the frames replace the folder only when all were written


def _writer(o: PlayOptions, fps: float):
    if o.out is None:
        return None
    if Path(o.out).suffix.lower() == ".mp4":
        return StreamWriter(Path(o.out), fps, output_stream(o.out_crf, o.out_preset))
    return _PngFolder(Path(o.out))


def check_output_stream(out_crf: int, out_preset: str) -> None:
    """Refuse an output mp4 this FFmpeg cannot write, naming the fields `out_crf` and `out_preset` (stdo-play's and
    stdo-upscale's)."""
    if not 0 <= out_crf <= 51:
        raise StdoError(f"`out_crf` {out_crf} is outside 0..51: give a CRF of the output mp4 in that range (0: "
                        "lossless)")
    try:
        output_stream(out_crf, out_preset).check()
    except StdoError as e:  # the output stream's `preset` is this stage's `out_preset`
        raise StdoError(str(e).replace("`preset`", "`out_preset`").replace("`crf`", "`out_crf`")) from None


def output_stream(crf: int, preset: str = "veryfast") -> StreamOptions:
    """The player's mp4: H.264 yuv420p at `crf`, or with crf 0 lossless RGB H.264 (decodes to the same pixels)."""
    if crf == 0:
        return StreamOptions(lossless=True, preset=preset)
    return StreamOptions(codec="h264", crf=crf, preset=preset)


def _hr_frames(hr: Path | None) -> Iterator[np.ndarray | None]:
    """The HR frames, then None for ever (no --hr, or fewer HR frames than LR ones: caught by the caller)."""
    if hr is not None:
        yield from iter_frames(Path(hr))
    while True:
        yield None


class _Scores(QualityScores):
    """The played frames' quality against HR (stdo.scores), and the seconds spent measuring it."""

    def __init__(self, shave: int) -> None:
        super().__init__(shave)  # QualityScores leaves `scale` pixels out at each border
        self.seconds = 0.0

    def add_frame(self, sr: np.ndarray, bicubic: torch.Tensor, hr: np.ndarray, prior: torch.Tensor | None) -> None:
        t0 = time.perf_counter()
        ref = as_nchw(hr[None]).float()
        self.add("model", as_nchw(sr[None]).float(), ref)
        self.add("bicubic", bicubic, ref)
        if prior is not None:
            self.add("prior", prior, ref)
        self.seconds += time.perf_counter() - t0


def prior_runner(player: Player, o: PlayOptions) -> Runner | None:
    """The carried prior's own file of the variant played, for a bundle whose models update a prior: what a client
    plays when the video ships no update (whole frames: a format with a signature per window shape has none here)."""
    from stdo.priors import PRIORS_DIR, prior_bases

    prior, fmt = player.bundle.prior, BACKENDS[o.backend]
    if not isinstance(prior, str) or RUNTIME_FORMATS[fmt].signatures:
        return None
    root = Path(o.priors) if o.priors else PRIORS_DIR
    base = next((b for b in prior_bases(prior, root) if (b["format"], b["precision"]) == (fmt, o.precision)), None)
    return None if base is None else open_runner(fmt, root / base["path"], o.threads)


def _play_frames(o: PlayOptions, player: Player, frames: Iterator[np.ndarray], hr_iter: Iterator[np.ndarray | None],
                 writer: BackgroundWriter | None, progress: StageProgress, scores: _Scores) -> None:
    width, height = player.hr_size
    prior = prior_runner(player, o) if o.hr is not None else None
    for index, lr, sr in player.play(frames, o.frames_per_batch):
        hr = next(hr_iter)
        bicubic = None
        if hr is not None or o.compare:
            t0 = time.perf_counter()
            bicubic = upscale_bicubic(lr[None], player.scale)
            scores.seconds += time.perf_counter() - t0
        if hr is not None:
            if hr.shape != (height, width, 3):
                raise StdoError(f"`hr` frames are {hr.shape[1]}x{hr.shape[0]}, expected {width}x{height} "
                                f"(x{player.scale} the bundle's LR size): give the matching HR source")
            t0 = time.perf_counter()
            alone = None if prior is None else \
                prior(as_nchw(lr[None]).float().div_(255)).float().clamp_(0, 1).mul_(255).round_()
            scores.seconds += time.perf_counter() - t0
            scores.add_frame(sr, bicubic, hr, alone)
        elif o.hr is not None:
            raise StdoError(f"`hr` {o.hr} ends after {index} frames, the video has {player.num_frames}")
        if writer is not None:
            t0 = time.perf_counter()
            frame = sr
            if o.compare:
                left = bicubic[0].to(torch.uint8).permute(1, 2, 0).numpy()
                frame = np.concatenate([left, sr], axis=1)
            writer.write(frame)
            player.timings.encode += time.perf_counter() - t0
        if progress:
            progress("play", 1, player.num_frames)


def play(o: PlayOptions, progress: StageProgress = None) -> dict:
    """Play a bundle; returns the report (timings, and PSNR per frame and in total with --hr).

    Frames are decoded ahead and encoded behind in threads (stdo.background), so decode and
    encode time counts only where inference waited for it.
    """
    _check(o)
    if o.out is None:
        return _play(o, progress)
    out = Path(o.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with stage_lock(out.parent, f"{out}", name=f".stdo-{out.name}.lock"):
        sweep_leftovers(out.parent, recursive=False, prefix=f".{out.name}.")  # of a killed stdo-play to OUT
        return _play(o, progress)


def _play(o: PlayOptions, progress: StageProgress) -> dict:
    player = Player(o.bundle, o.backend, o.precision, o.threads, o.priors)
    frames = prefetch(lr_stream(player, o.lr_video))
    width, height = player.hr_size
    scores = _Scores(player.scale if o.shave is None else o.shave)
    writer = _writer(o, player.fps)
    with writer if writer is not None else contextlib.nullcontext():
        background = BackgroundWriter(writer) if writer is not None else None
        try:
            _play_frames(o, player, frames, _hr_frames(o.hr), background, progress, scores)
            if background is not None:
                t0 = time.perf_counter()
                background.close()
                player.timings.encode += time.perf_counter() - t0
                background = None
        finally:
            if background is not None:  # stopped by an error: end the thread, keep the first error
                with contextlib.suppress(BaseException):
                    background.close()
    player.timings.extra["metrics"] = scores.seconds
    report = {
        "bundle": str(o.bundle), "backend": o.backend, "precision": o.precision, "scale": player.scale,
        "lr_size": [player.grid.width, player.grid.height], "hr_size": [width, height],
        "grid": [player.grid.cols, player.grid.rows], "method": player.bundle.manifest["method"],
        "margin": None if player.bundle.plain else player.bundle.plan.margin,
        "plan": None if player.bundle.plain else player.bundle.plan.stats(player.grid), "models": len(player.runners),
        **player.timings.to_dict(), "out": str(o.out) if o.out else None, "compare": o.compare,
        "delivered": player.delivered_bytes,
    }
    if scores:
        report["psnr"] = {**scores.model_and_bicubic(),
                          "per_frame": [round(float(v), 4) for v in scores.per_frame("model")],
                          "bicubic_per_frame": [round(float(v), 4) for v in scores.per_frame("bicubic")]}
        if scores.has("prior"):  # the carried prior alone, the same variant, on the same decoded frames
            report["psnr"]["prior"] = scores.mean("prior")
    if o.rate:
        total, target = player.delivered_bytes["total"], report["psnr"]["model"]
        report["delivery"] = {"bundle": player.delivered_bytes, "hr": {}}
        for codec in o.rate_codec:  # the HR stream the user would otherwise ship, in each codec
            point, tried = hr_stream_at_psnr(lambda: iter_frames(Path(o.hr)), player.fps, target, shave=scores.scale,
                                             codec=codec,
                                             progress=partial(progress, f"HR {codec} crf", total=None) if progress
                                             else None)
            same = bytes_at_psnr(tried, target)  # interpolated between the CRFs around the PSNR
            report["delivery"]["hr"][codec] = {
                "point": point.to_dict(), "tried": [p.to_dict() for p in tried], "bytes_ratio": total / point.bytes,
                "same_psnr": same, "bytes_ratio_same_psnr": None if same is None else total / same}
        # every client the bundle serves, priced against the same HR streams at the PSNR this variant played
        report["delivery"]["clients"] = {
            name: {**b, "vs_hr": {codec: b["total"] / (hr["same_psnr"] or hr["point"]["bytes"])
                                  for codec, hr in report["delivery"]["hr"].items()}}
            for name, b in player.bundle.bytes_per_variant.items()}
    if o.report is not None:
        if Path(o.report).suffix == ".json":
            write_json(o.report, report)
        else:
            write_bytes(o.report, format_markdown(report).encode())
    if o.plot is not None:
        plot_psnr(report, Path(o.plot))
    return report
