"""stdo-deliver: parse options, call stdo.deliver.pipeline.deliver, print the operating points."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.cluster.pipeline import ClusterOptions
from stdo.bundle import format_variant_bytes
from stdo.deliver.pipeline import DeliverOptions, deliver, format_points, kept_line, parse_budget
from stdo.errors import StdoError
from stdo.export.pipeline import ExportOptions
from stdo.runtimes import BACKENDS, EXPORT_FORMATS, QUANTIZE, parse_list
from stdo.grid import parse_grid
from stdo.stream import CODECS, StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import ON_DEVICE_METHODS, TUNES, MethodOptions
from stdo.train.pipeline import TrainOptions
from stdo.clip import Crop


def _integers(example: str):
    """A click callback reading a comma-separated list of integers (`example` shows one)."""

    def callback(ctx, param, value: str) -> tuple[int, ...]:
        try:
            return tuple(int(v) for v in value.split(","))
        except ValueError:
            raise StdoError(f"--{param.name.rstrip('s')} {value!r}: give integers separated by commas, e.g. "
                            f"{example}") from None

    return callback


def _parse(fn):
    def callback(ctx, param, value):
        return None if value is None else fn(value)

    return callback


@stdo_command(
    "deliver",
    epilog="""\b
Examples:
  stdo-deliver clip.mp4 runs/clip --budget 120KB
  stdo-deliver clip.mp4 runs/clip --budget 400kbit/s --crf 23,27,31,35 --method stdo,jstdo
  stdo-deliver clip.mp4 runs/clip --budget 1MB --scale 2,1 --grid 20x10 --format onnx,tflite --quantize int8
\b
OUT is the chosen point's RUN: its bundle in OUT/bundle, every point measured in OUT/points.md. Where the HR
stream itself is kept, OUT/bundle is that stream alone (every client plays it as it decodes).
""",
)
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--budget", required=True, metavar="BYTES|RATE",
              help="What a client may download for the clip (LR stream + model updates + model map): bytes "
                   "(120000, 120KB, 1.5MB) or a bitrate over the clip's duration (400kbit/s).")
@click.option("--crf", "crfs", default=",".join(map(str, DeliverOptions.crfs)), show_default=True,
              callback=_integers("23,27,31"), metavar="CRF,...",
              help="LR stream CRFs to try; each is clustered, trained, exported and played.")
@click.option("--codec", type=click.Choice(tuple(CODECS)), default="h264", show_default=True,
              help="Codec of the LR stream.")
@click.option("--scale", "scales", default=",".join(map(str, DeliverOptions.scales)), show_default=True,
              callback=_integers("4,2,1"), metavar="SCALE,...",
              help="The rungs tried: each reduced scale's LR stream (with the carried prior of that scale), and 1: "
                   "the HR stream itself at the best CRF that fits --budget, kept where no reduced scale plays "
                   "better.")
@click.option("--fill-budget/--no-fill-budget", default=DeliverOptions.fill_budget, show_default=True,
              help="Also play each reduced scale's stream at the lowest CRF that fits --budget, by what needs no "
                   "training (bicubic, the prior alone): an update then ships only where it beats its bytes spent "
                   "on the stream.")
@click.option("--grid", "grid", default="10x5", show_default=True, callback=_parse(parse_grid), metavar="COLSxROWS",
              help="Patches per LR frame, COLSxROWS.")
@click.option("--chunks", type=int, default=2, show_default=True, help="Number of chunks (models) k.")
@click.option("--hold", type=int, default=ClusterOptions.hold, show_default=True, metavar="FRAMES",
              help="Each patch's chunk the median of its chunks over FRAMES frames (odd; stdo-cluster --hold): a "
                   "smaller model map. 1 = off.")
@click.option("--frames", type=int, help="Number of frames to use [default: all].")
@click.option("--crop", callback=_parse(Crop.parse), metavar="WxH+X+Y", help="Crop of the HR frames, in HR pixels.")
@click.option("--method", "methods", default=",".join(DeliverOptions.methods), show_default=True, metavar="METHOD,...",
              callback=lambda c, p, v: parse_list(v, ON_DEVICE_METHODS, "--method"),
              help="On-device methods tried at each CRF (stdo-train --method): stdo ships an update per chunk and "
                   "the chunk map, jstdo one joint update, prior the carried prior alone (no update to pay for).")
@click.option("--steps", type=int, default=800, show_default=True, help="Optimizer steps per point (stdo-train --steps).")
@click.option("--tune", type=click.Choice(TUNES),
              help="What training may change of the prior (stdo-train --tune).  [default: channels from a prior]")
@click.option("--sparse-share", type=float, default=MethodOptions.sparse_share, show_default=True,
              help="--tune sparse: share of the conv weights that may differ from the prior (stdo-train's).")
@click.option("--init", default="prior", show_default=True, metavar="prior|scratch|PATH",
              help="Where models start (stdo-train --init).")
@click.option("--format", "formats", default="onnx", show_default=True,
              callback=lambda c, p, v: parse_list(v, EXPORT_FORMATS, "--format"),
              help="Formats of the kept point's bundle (stdo-export --format); each candidate is measured on the "
                   "variant played.")
@click.option("--quantize", default="int8", show_default=True,
              callback=lambda c, p, v: parse_list(v, QUANTIZE, "--quantize") if v else (),
              help="Quantized variants of the kept point's bundle (stdo-export --quantize).")
@click.option("--backend", type=click.Choice(list(BACKENDS)), default="onnxruntime",
              show_default=True, help="The client runtime whose played frames are scored (stdo-play --backend).")
@click.option("--precision", default="int8", show_default=True, help="The variant played (stdo-play --precision).")
@click.option("--every-client", is_flag=True,
              help="The budget holds for every --format's client at --precision (web, Android, iOS): each candidate "
                   "is exported in each and counted at its largest download; played by --backend.")
@click.option("--tie", "tie_db", type=float, default=0.05, show_default=True, metavar="DB",
              help="Points within this many dB of the best played PSNR are ties: the cheapest of them is kept.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if stdo-deliver wrote it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def deliver_command(source, out, budget, crfs, codec, scales, fill_budget, grid, chunks, hold, frames, crop, methods,
                    steps, tune, sparse_share, init, formats, quantize, backend, precision, every_client, tie_db,
                    overwrite, quiet, verbose):
    """Deliver a clip within a byte budget at the operating point of best played PSNR.

    For each scale and LR CRF (cheapest first): the stream alone upsampled by bicubic, then each method:
    cluster, train from the prior, export with coded updates, and play with the client's runtime against the
    HR frames; then the HR stream itself at the best CRF that fits. Keeps the point of best PSNR whose
    delivered bytes fit --budget (the cheapest of those within --tie of it), and reports every point
    measured. A budget the cheapest stream alone exceeds is refused before any training; nothing is written
    unless a point fits.
    """
    setup_logging(verbose)
    budget_bytes, budget_kbps = parse_budget(budget)
    options = DeliverOptions(
        cluster=ClusterOptions(source=source, run=out, scale=max(scales), grid=grid or (10, 5), chunks=chunks, hold=hold,
                               frames=frames, crop=crop, stream=StreamOptions(codec=codec)),
        out=out, budget_bytes=budget_bytes, budget_kbps=budget_kbps, crfs=crfs, scales=scales, fill_budget=fill_budget,
        methods=methods,
        train=TrainOptions(run=out, config=TrainConfig(steps=steps),
                           method_options=MethodOptions(init=init, tune=tune, sparse_share=sparse_share)),
        export=ExportOptions(run=out, formats=formats, quantize=quantize),
        backend=backend, precision=precision, every_client=every_client, tie_db=tie_db, overwrite=overwrite,
    )
    with StageBars(disable=quiet) as bars:
        report = deliver(options, progress=bars)
    click.echo("\n".join(format_points(report)))
    click.echo(kept_line(report, out))
    if report.get("clients"):
        click.echo(f"clients  {format_variant_bytes(report['clients'])}")


def main() -> None:
    deliver_command(prog_name="stdo-deliver")
