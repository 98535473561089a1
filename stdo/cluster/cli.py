"""stdo-cluster: parse options, call stdo.cluster.pipeline.cluster, print the summary."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.cluster.partition import PARTITIONS
from stdo.cluster.pipeline import ClusterOptions, ClusterSummary, cluster
from stdo.cluster.score import SCORERS
from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.grid import parse_grid
from stdo.stream import CODECS, StreamOptions
from stdo.clip import Crop


def _parse(fn):
    def callback(ctx, param, value):
        return None if value is None else fn(value)

    return callback


def format_summary(s: ClusterSummary) -> str:
    (hw, hh), (lw, lh) = s.hr_size, s.lr_size
    lines = [
        f"RUN        {s.run}",
        f"frames     {s.frames}  HR {hw}x{hh}  LR {lw}x{lh}",
        f"patches    {s.patches}  ({s.grid[0]}x{s.grid[1]} per frame)",
        f"scores     {s.score_range[0]:.2f} .. {s.score_range[1]:.2f} dB",
        "chunk  patches  share",
    ]
    for i, n in enumerate(s.counts):
        label = " (hardest)" if i == 0 and len(s.counts) > 1 else " (easiest)" if i == len(s.counts) - 1 and i else ""
        lines.append(f"{i:>5}  {n:>7}  {100 * n / s.patches:5.1f}%{label}")
    lines.append("thresholds " + (", ".join(f"{t:.2f}" for t in s.thresholds) or "-"))
    if s.stream:
        v = s.stream
        lines.append(f"LR stream  {v['codec']} {v['profile']} {v['pix_fmt']} {v['matrix']} {v['range']}  "
                     f"{v['bytes']:,} bytes  {v['bitrate_kbps']:.1f} kbit/s  {v['duration_s']:.2f} s")
    lines.append(f"time       {s.seconds:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in s.timings.items()) + ")")
    return "\n".join(lines)


@stdo_command(
    "cluster",
    epilog="""\b
Examples:
  stdo-cluster clip.mp4 runs/clip --scale 4 --grid 10x5 --chunks 2
  stdo-cluster clip.mp4 runs/clip --crop 640x360+0+0 --frames 30 --crf 28
  stdo-cluster clip.mp4 runs/clip --codec av1 --bitrate 300 --gop 120
  stdo-cluster clip.mp4 runs/clip --lossless          (the STDO paper's protocol)
  stdo-cluster VSD4K/game_15s_1 runs/game --scale 2 --grid 20x10 --partition kmeans
""",
)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--scale", type=int, default=4, show_default=True, help="Upscaling factor (2 or more).")
@click.option("--grid", "grid", default="10x5", show_default=True, callback=_parse(parse_grid), metavar="COLSxROWS",
              help="Patches per LR frame, COLSxROWS (STDO: 20x10 at x2, 10x5 at x4 on 1080p).")
@click.option("--margin", type=int, default=8, show_default=True,
              help="Context margin in LR pixels read around each patch at inference.")
@click.option("--chunks", type=int, default=2, show_default=True, help="Number of chunks (models) k.")
@click.option("--scorer", type=click.Choice(SCORERS), default="bicubic", show_default=True,
              help="Patch difficulty: bicubic PSNR, a general WDSR model's PSNR, or DCT energy (no HR).")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="WDSR checkpoint for --scorer general (STDO/WDSR release format or stdo's).")
@click.option("--partition", type=click.Choice(PARTITIONS), default="quantile", show_default=True,
              help="quantile: k equal-count bins (STDO); kmeans: KMeans on standardized features.")
@click.option("--smooth", type=int, default=0, show_default=True, metavar="PASSES",
              help="Passes of a 3x3 majority filter over the chunk map: larger same-chunk regions, so playback runs "
                   "fewer, larger windows; some patches then get a neighbouring difficulty's model. 0 = off.")
@click.option("--hold", type=int, default=ClusterOptions.hold, show_default=True, metavar="FRAMES",
              help="Each patch's chunk is the median of its chunks over FRAMES frames (odd): a patch at a threshold "
                   "stops flipping between models, and the model map a client downloads shrinks. 1 = off.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for kmeans.")
@click.option("--start", type=int, default=0, show_default=True, help="First frame to use (0-based).")
@click.option("--frames", type=int, help="Number of frames to use [default: all].")
@click.option("--crop", callback=_parse(Crop.parse), metavar="WxH+X+Y",
              help="Crop of the HR frames, in HR pixels; sizes are cut to a multiple of the scale (twice the scale "
                   "for a 4:2:0 LR stream, which needs even LR sizes).")
@click.option("--lr-video", type=click.Path(path_type=Path),
              help="LR video or frame folder matching SOURCE [default: bicubic downscaling of SOURCE].")
@click.option("--codec", type=click.Choice(tuple(CODECS)), help="Codec of the LR stream: h264 (libx264), hevc "
              "(libx265), av1 (libsvtav1). [default: h264 High yuv420p, BT.709 limited range]")
@click.option("--crf", type=int, help="Constant rate factor of the LR stream [default: h264 23, hevc 28, av1 35].")
@click.option("--bitrate", type=int, metavar="KBPS", help="Average bitrate of the LR stream in kbit/s (instead of --crf).")
@click.option("--preset", help="Encoder preset: ultrafast..veryslow (h264, hevc), 0..13 (av1). [default: medium, av1 8]")
@click.option("--gop", type=int, help="Frames between keyframes of the LR stream. [default: 2 seconds]")
@click.option("--lossless", is_flag=True, help="Lossless RGB LR stream (h264 or hevc): the STDO paper's protocol.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for --scorer general.")
@click.option("--overwrite", is_flag=True, help="Replace RUN even if it was made from another source.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def cluster_command(source, run, scale, grid, margin, chunks, scorer, checkpoint, partition, smooth, hold, seed, start,
                    frames, crop, lr_video, codec, crf, bitrate, preset, gop, lossless, device, overwrite, quiet, verbose):
    """Cut a clip into patches, score them, and group them into chunks.

    SOURCE is a video file (anything FFmpeg decodes), a folder of PNG/JPG frames
    (numeric order), or a VSD4K folder (DIV2K_train_HR + DIV2K_train_LR_bicubic/X<s>).
    RUN is the output folder: run.json, frames/hr.npy, frames/lr.mp4 (the LR stream a client
    receives, shipped byte for byte by stdo-export), frames/lr.npy (that stream decoded: what
    training and evaluation use) and clusters.npz. Chunk 0 holds the hardest patches.

    The LR stream is H.264 yuv420p at CRF 23 unless the stream options say otherwise. A given
    --lr-video used whole is kept as it is.
    """
    setup_logging(verbose)
    given = (codec, crf, bitrate, preset, gop) != (None,) * 5 or lossless
    stream = StreamOptions(codec=codec or "h264", crf=crf, bitrate=bitrate, preset=preset, gop=gop,
                           lossless=lossless) if given else None
    options = ClusterOptions(
        source=source, run=run, scale=scale, grid=grid, margin=margin, chunks=chunks, scorer=scorer,
        checkpoint=checkpoint, partition=partition, smooth=smooth, hold=hold, seed=seed, start=start, frames=frames,
        crop=crop, lr_video=lr_video, stream=stream, overwrite=overwrite, device=device,
    )
    with StageBars(disable=quiet) as bars:
        summary = cluster(options, progress=bars)
    click.echo(format_summary(summary))


def main() -> None:
    cluster_command(prog_name="stdo-cluster")
