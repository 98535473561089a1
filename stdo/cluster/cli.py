"""stdo-cluster: parse options, call stdo.cluster.pipeline.cluster, print the summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from click.core import ParameterSource

from stdo.cluster.pipeline import ClusterOptions, ClusterSummary, cluster
from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.options import click_options, from_params
from stdo.stream import StreamOptions


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
@click_options(ClusterOptions)
@click_options(StreamOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cluster_command(ctx: click.Context, quiet: bool, verbose: int, **fields) -> None:
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
    given = any(ctx.get_parameter_source(f.name) is not ParameterSource.DEFAULT for f in dataclasses.fields(StreamOptions))
    stream = from_params(StreamOptions, fields) if given else None  # none given: the default, or --lr-video as it is
    options = from_params(ClusterOptions, fields, stream=stream)
    with StageBars(disable=quiet) as bars:
        summary = cluster(options, progress=bars)
    click.echo(format_summary(summary))


def main() -> None:
    cluster_command(prog_name="stdo-cluster")
