"""stdo-deliver: parse options, call stdo.deliver.pipeline.deliver, print the operating points."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import click

from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.cluster.pipeline import ClusterOptions
from stdo.bundle import format_variant_bytes
from stdo.deliver.pipeline import DeliverOptions, deliver, format_points, kept_line
from stdo.export.pipeline import ExportOptions
from stdo.options import click_options
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions


DEFAULTS = {f.name: f.default_factory() for f in fields(DeliverOptions) if f.name in ("train", "export")}
# the other stages' fields stdo-deliver exposes, each as that stage declares it (defaults: DeliverOptions')
CLUSTER_FIELDS, STREAM_FIELDS = ("grid", "chunks", "hold", "frames", "crop"), ("codec",)
CONFIG_FIELDS, METHOD_FIELDS = ("steps",), ("tune", "sparse_share", "init")
EXPORT_FIELDS = ("format", "quantize", "ship_all")


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
@click_options(DeliverOptions, only=("budget", "crf"))
@click_options(StreamOptions, only=STREAM_FIELDS)
@click_options(DeliverOptions, only=("scale", "fill_budget"))
@click_options(ClusterOptions, only=CLUSTER_FIELDS)
@click_options(DeliverOptions, only=("method",))
@click_options(TrainConfig, only=CONFIG_FIELDS, defaults=DEFAULTS["train"].config)
@click_options(MethodOptions, only=METHOD_FIELDS, defaults=DEFAULTS["train"].method_options)
@click_options(ExportOptions, only=EXPORT_FIELDS, defaults=DEFAULTS["export"])
@click_options(DeliverOptions, only=("backend", "precision", "every_client", "tie", "overwrite"))
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def deliver_command(source: Path, out: Path, quiet: bool, verbose: int, **fields) -> None:
    """Deliver a clip within a byte budget at the operating point of best played PSNR.

    For each scale and LR CRF (cheapest first): the stream alone upsampled by bicubic, then each method:
    cluster, train from the prior, export with coded updates, and play with the client's runtime against the
    HR frames; then the HR stream itself at the best CRF that fits. Keeps the point of best PSNR whose
    delivered bytes fit --budget (the cheapest of those within --tie of it), and reports every point
    measured. A budget the cheapest stream alone exceeds is refused before any training; nothing is written
    unless a point fits.
    """
    setup_logging(verbose)

    def picked(names: tuple[str, ...]) -> dict:
        return {name: fields.pop(name) for name in names}

    stream = StreamOptions(**picked(STREAM_FIELDS))
    cluster = ClusterOptions(source=source, run=out, scale=max(fields["scale"]), stream=stream, **picked(CLUSTER_FIELDS))
    train = DEFAULTS["train"]
    train = replace(train, run=out, config=replace(train.config, **picked(CONFIG_FIELDS)),
                    method_options=replace(train.method_options, **picked(METHOD_FIELDS)))
    export = replace(DEFAULTS["export"], run=out, **picked(EXPORT_FIELDS))
    options = DeliverOptions(cluster=cluster, out=out, train=train, export=export, **fields)  # the rest are stdo-deliver's own
    with StageBars(disable=quiet) as bars:
        report = deliver(options, progress=bars)
    click.echo("\n".join(format_points(report)))
    click.echo(kept_line(report, out))
    if report.get("clients"):
        click.echo(f"clients  {format_variant_bytes(report['clients'])}")


def main() -> None:
    deliver_command(prog_name="stdo-deliver")
