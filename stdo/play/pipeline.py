"""stdo-play as a library call: bundle -> SR mp4 or PNG frames, PSNR against HR, timings.

Outputs are written atomically: an mp4 goes to a temp file, PNG frames to a temp folder,
and either replaces the destination only when every frame is written. A destination
that exists is refused unless `overwrite`.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from stdo.background import BackgroundWriter, prefetch
from stdo.errors import StdoError
from stdo.fileio import replace_dir, temp_dir_beside, write_bytes, write_json
from stdo.scores import QualityScores
from stdo.play.player import Player, lr_stream
from stdo.ratequality import bytes_at_psnr, hr_stream_at_psnr
from stdo.stream import StreamOptions, StreamWriter
from stdo.video import as_nchw, iter_frames, upscale_bicubic

Progress = Callable[[str, int, int | None], None] | None


@dataclass
class PlayOptions:
    bundle: Path
    backend: str = "onnxruntime"
    precision: str = "fp32"
    out: Path | None = None  # .mp4 file, or a folder for PNG frames; None: play without writing
    compare: bool = False  # write bicubic | SR side by side
    hr: Path | None = None  # HR reference (video, frame folder or .npy) for PSNR
    video: Path | None = None  # LR video to play instead of the bundle's own
    overwrite: bool = False
    crf: int = 18  # H.264 yuv420p (BT.709 limited, tagged) at this CRF; 0: lossless RGB H.264
    preset: str = "veryfast"  # x264's: a player encodes as it plays (medium takes the cores from inference)
    batch: int = 4
    threads: int | None = None
    priors: Path | None = None  # the priors this client carries (default: the package's)
    report: Path | None = None  # .json or .md
    plot: Path | None = None  # PNG: PSNR per frame, bicubic vs the models (needs hr)
    rate: bool = False  # also find the HR H.264 stream reaching the models' PSNR, and compare bytes (needs hr)


def _check(o: PlayOptions) -> None:
    if o.batch <= 0:
        raise StdoError(f"--frames-per-batch {o.batch} must be above 0")
    if not 0 <= o.crf <= 51:
        raise StdoError(f"--crf {o.crf} is outside 0..51")
    output_stream(o.crf, o.preset).check()
    for path, what in ((o.out, "--out"), (o.report, "--report"), (o.plot, "--plot")):
        if path is not None and Path(path).exists() and not o.overwrite:
            raise StdoError(f"{what} {path} exists: give another path, or --overwrite to replace it")
    if o.out is not None and Path(o.out).is_dir() and not (Path(o.out) / PNG_MARKER).is_file():
        raise StdoError(f"--out {o.out} is a folder stdo-play did not write: give another folder "
                        "(--overwrite replaces only stdo-play's own frame folders)")
    if o.out is not None and Path(o.out).suffix and Path(o.out).suffix.lower() != ".mp4":
        raise StdoError(f"--out {o.out}: give an .mp4 file, or a folder (no suffix) for PNG frames")
    if o.hr is not None and not Path(o.hr).exists():
        raise StdoError(f"--hr {o.hr} does not exist: give the HR video, frame folder or RUN/frames/hr.npy")
    if o.plot is not None and o.hr is None:
        raise StdoError("--plot needs --hr: PSNR per frame is measured against the HR frames")
    if o.rate and o.hr is None:
        raise StdoError("--rate needs --hr: the HR stream is encoded from the HR frames and measured against them")
    if o.report is not None and Path(o.report).suffix not in (".json", ".md"):
        raise StdoError(f"--report {o.report}: give a .json or .md file")
    if o.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise StdoError("--plot needs matplotlib: pip install 'stdo[plot]'") from None


PNG_MARKER = ".stdo-play"  # in a frame folder stdo-play wrote: --overwrite replaces only such folders


class _PngFolder:
    """PNG frames into a temp folder that replaces `path` when closed without error."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tmp = temp_dir_beside(self.path)
        (self.tmp / PNG_MARKER).write_text("frames written by stdo-play; --overwrite may replace this folder\n")
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        self.count += 1
        Image.fromarray(frame).save(self.tmp / f"{self.count:06d}.png", compress_level=1)

    def __enter__(self) -> "_PngFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                replace_dir(self.tmp, self.path)
        finally:
            if self.tmp.exists():
                shutil.rmtree(self.tmp)


def _writer(o: PlayOptions, fps: float):
    if o.out is None:
        return None
    if Path(o.out).suffix.lower() == ".mp4":
        return StreamWriter(Path(o.out), fps, output_stream(o.crf, o.preset))
    return _PngFolder(Path(o.out))


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

    def __init__(self, scale: int) -> None:
        super().__init__(scale)
        self.seconds = 0.0

    def add_frame(self, sr: np.ndarray, bicubic: torch.Tensor, hr: np.ndarray) -> None:
        t0 = time.perf_counter()
        ref = as_nchw(hr[None]).float()
        self.add("model", as_nchw(sr[None]).float(), ref)
        self.add("bicubic", bicubic, ref)
        self.seconds += time.perf_counter() - t0


def _play_frames(o: PlayOptions, player: Player, frames: Iterator[np.ndarray], hr_iter: Iterator[np.ndarray | None],
                 writer: BackgroundWriter | None, progress: Progress, scores: _Scores) -> None:
    width, height = player.hr_size
    for index, lr, sr in player.play(frames, o.batch):
        hr = next(hr_iter)
        bicubic = None
        if hr is not None or o.compare:
            t0 = time.perf_counter()
            bicubic = upscale_bicubic(lr[None], player.scale)
            scores.seconds += time.perf_counter() - t0
        if hr is not None:
            if hr.shape != (height, width, 3):
                raise StdoError(f"--hr frames are {hr.shape[1]}x{hr.shape[0]}, expected {width}x{height} "
                                f"(x{player.scale} the bundle's LR size): give the matching HR source")
            scores.add_frame(sr, bicubic, hr)
        elif o.hr is not None:
            raise StdoError(f"--hr {o.hr} ends after {index} frames, the video has {player.num_frames}")
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


def play(o: PlayOptions, progress: Progress = None) -> dict:
    """Play a bundle; returns the report (timings, and PSNR per frame and in total with --hr).

    Frames are decoded ahead and encoded behind in threads (stdo.background), so decode and
    encode time counts only where inference waited for it.
    """
    _check(o)
    player = Player(o.bundle, o.backend, o.precision, o.threads, o.priors)
    frames = prefetch(lr_stream(player, o.video))
    width, height = player.hr_size
    scores = _Scores(player.scale)
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
        "grid": [player.grid.cols, player.grid.rows], "margin": player.grid.margin,
        "plan": player.bundle.plan.stats(player.grid), "models": len(player.runners),
        **player.timings.to_dict(), "out": str(o.out) if o.out else None, "compare": o.compare,
        "delivered": player.delivered_bytes,
    }
    if scores:
        report["psnr"] = {**scores.model_and_bicubic(),
                          "per_frame": [round(float(v), 4) for v in scores.per_frame("model")],
                          "bicubic_per_frame": [round(float(v), 4) for v in scores.per_frame("bicubic")]}
    if o.rate:
        point, tried = hr_stream_at_psnr(lambda: iter_frames(Path(o.hr)), player.fps, report["psnr"]["model"],
                                         shave=player.scale,
                                         progress=partial(progress, "HR crf", total=None) if progress else None)
        bundle_bytes = player.delivered_bytes
        same = bytes_at_psnr(tried, report["psnr"]["model"])
        report["delivery"] = {"bundle": bundle_bytes, "hr_h264": point.to_dict(),
                              "hr_h264_tried": [p.to_dict() for p in tried],
                              "bytes_ratio": bundle_bytes["total"] / point.bytes,
                              "hr_h264_same_psnr": same,  # interpolated between the CRFs around the PSNR
                              "bytes_ratio_same_psnr": None if same is None else bundle_bytes["total"] / same}
    if o.report is not None:
        if Path(o.report).suffix == ".json":
            write_json(o.report, report)
        else:
            write_bytes(o.report, format_markdown(report).encode())
    if o.plot is not None:
        plot_psnr(report, Path(o.plot))
    return report


def format_table(report: dict) -> list[str]:
    """Speed, where the time went, and PSNR as aligned text lines."""
    s = report["seconds"]
    plan = report["plan"]
    lines = [f"{report['frames']} frames  {report['fps']:.2f} fps  backend {report['backend']} {report['precision']}  "
             f"{report['models']} model(s)  plan {plan['runs_per_frame']:.1f} runs/frame, "
             f"{plan['pixels_run_per_needed']:.2f}x the frame's pixels",
             "time     " + "  ".join(f"{k} {s[k]:.2f} s ({100 * s[k] / max(s['playback'], 1e-9):.0f}%)"
                                    for k in ("decode", "inference", "stitch", "encode"))]
    if "psnr" in report:
        p = report["psnr"]
        lines.append(f"RGB PSNR model {p['model']:.3f} dB  bicubic {p['bicubic']:.3f} dB  "
                     f"gain {p['model'] - p['bicubic']:+.3f} dB")
        lines.append(f"Y-PSNR   model {p['model_y']:.3f} dB  bicubic {p['bicubic_y']:.3f} dB  "
                     f"gain {p['model_y'] - p['bicubic_y']:+.3f} dB")
        lines.append(f"SSIM     model {p['model_ssim']:.4f}  bicubic {p['bicubic_ssim']:.4f}")
    if "delivery" in report:
        lines.append(delivery_line(report))
    return lines


def delivery_line(report: dict) -> str:
    d = report["delivery"]
    b, h = d["bundle"], d["hr_h264"]
    reached = "reaches" if h["psnr"] >= report["psnr"]["model"] else "falls short of"
    return (f"bytes    bundle {b['total']:,} (video {b['video']:,} + models {b['models']:,} + model map "
            f"{b['model_map']:,} + plan {b['plan']:,})  vs  HR H.264 crf {h['crf']} {h['bytes']:,} ({h['psnr']:.3f} dB, {reached} the "
            f"model's RGB PSNR): {d['bytes_ratio']:.2f}x" + _same_psnr(d))


def _same_psnr(d: dict) -> str:
    same = d.get("hr_h264_same_psnr")
    return "" if same is None else (f"; {d['bytes_ratio_same_psnr']:.2f}x HR H.264 interpolated to the same PSNR "
                                    f"({same:,.0f} bytes)")


def format_markdown(report: dict) -> str:
    s = report["seconds"]
    out = [f"# stdo-play: {report['bundle']}", "",
           f"{report['frames']} frames, {report['lr_size'][0]}x{report['lr_size'][1]} -> "
           f"{report['hr_size'][0]}x{report['hr_size'][1]} (x{report['scale']}), backend {report['backend']} "
           f"{report['precision']}, {report['models']} model(s): **{report['fps']:.2f} fps**.", "",
           "| stage | seconds | share |", "|---|---|---|"]
    out += [f"| {k} | {s[k]:.2f} | {100 * s[k] / max(s['playback'], 1e-9):.0f}% |"
            for k in ("decode", "inference", "stitch", "encode")]
    if "psnr" in report:
        p = report["psnr"]
        out += ["", "| | RGB PSNR (dB) | Y-PSNR (dB) | SSIM |", "|---|---|---|---|",
                f"| bicubic | {p['bicubic']:.3f} | {p['bicubic_y']:.3f} | {p['bicubic_ssim']:.4f} |",
                f"| stdo ({report['backend']} {report['precision']}) | {p['model']:.3f} | {p['model_y']:.3f} | "
                f"{p['model_ssim']:.4f} |",
                f"| gain | {p['model'] - p['bicubic']:+.3f} | {p['model_y'] - p['bicubic_y']:+.3f} | "
                f"{p['model_ssim'] - p['bicubic_ssim']:+.4f} |"]
    if "delivery" in report:
        d = report["delivery"]
        b, h = d["bundle"], d["hr_h264"]
        out += ["", "| delivered | bytes | RGB PSNR (dB) | Y-PSNR (dB) | SSIM |", "|---|---|---|---|---|",
                f"| stdo bundle (LR video {b['video']:,} + models {b['models']:,} + model map {b['model_map']:,} + "
                f"plan {b['plan']:,}) | "
                f"{b['total']:,} | {p['model']:.3f} | {p['model_y']:.3f} | {p['model_ssim']:.4f} |",
                f"| HR H.264 yuv420p, crf {h['crf']} (the largest CRF reaching that RGB PSNR) | {h['bytes']:,} | "
                f"{h['psnr']:.3f} | {h['psnr_y']:.3f} | {h['ssim']:.4f} |",
                f"| bundle / HR stream | {d['bytes_ratio']:.2f}x | | | |"]
        if d.get("hr_h264_same_psnr") is not None:
            out += [f"| HR H.264 interpolated to the same RGB PSNR (log-bytes between the CRFs around it) | "
                    f"{d['hr_h264_same_psnr']:,.0f} | {p['model']:.3f} | | |",
                    f"| bundle / HR stream at the same PSNR | {d['bytes_ratio_same_psnr']:.2f}x | | | |"]
    return "\n".join(out) + "\n"


def plot_psnr(report: dict, path: Path) -> None:
    """PNG of PSNR per frame: bicubic vs the bundle's models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stdo.fileio import atomic_path

    p = report["psnr"]
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=120)
    x = np.arange(1, len(p["per_frame"]) + 1)
    ax.plot(x, p["bicubic_per_frame"], label=f"bicubic ({p['bicubic']:.2f} dB)", color="tab:gray")
    ax.plot(x, p["per_frame"], label=f"stdo, {report['models']} model(s) ({p['model']:.2f} dB)", color="tab:blue")
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"x{report['scale']}, {report['backend']} {report['precision']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
