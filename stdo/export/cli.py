"""stdo-export: parse options, call stdo.export.pipeline.export, print the verification table."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.bundle import format_variant_bytes
from stdo.errors import StdoError
from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.export.pipeline import ExportOptions, export
from stdo.export.report import format_table, updates_line
from stdo.options import click_options, from_params


def _video_crf_is_gone(ctx, param, value):
    if value is not None:
        raise StdoError("--video-crf is gone: the bundle ships the RUN's own LR stream byte for byte; choose it at "
                        "clustering with stdo-cluster --codec/--crf/--bitrate/--lossless")


@stdo_command(
    "export",
    epilog="""\b
Examples:
  stdo-export runs/clip --method stdo --format onnx
  stdo-export runs/clip --method stdo --format onnx,tflite,coreml --quantize int8,fp16
  stdo-export runs/clip --method jstdo --format tflite --out runs/clip/bundle-jstdo
\b
Variants written per model: onnx fp32 (+int8); tflite fp32 (+fp16, +int8); coreml fp16 (+int8).
Converters: pip install 'stdo[export]' (onnx + onnxruntime, litert-torch + ai-edge-litert, coremltools).
""",
)
@click.argument("run", type=click.Path(path_type=Path))
@click_options(ExportOptions)
@click.option("--video-crf", type=int, hidden=True, callback=_video_crf_is_gone)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv shows the converters' own output).")
def export_command(quiet: bool, verbose: int, video_crf: None, **fields) -> None:
    """Export the trained models of a RUN as ONNX, TFLite and CoreML, verify them, and write the bundle.

    The bundle (RUN/bundle by default) holds manifest.json, the model map, the inference plan
    (the model runs a client makes per frame), the LR video, models/ and report.json + report.md:
    every artifact's bytes, PSNR against the fp32
    PyTorch output and against HR (RGB and Y), and time per window. The LR video is the
    RUN's own stream (frames/lr.mp4) byte for byte: choose it with stdo-cluster. The bundle is built in a temp
    folder and moved into place only when complete.
    """
    setup_logging(verbose)
    options = from_params(ExportOptions, fields)
    with StageBars(unit="step", disable=quiet) as bars:
        report = export(options, progress=bars)
    plan = report["plan"]
    click.echo(f"method {report['method']}  x{report['scale']}  {report['models']} model(s)  verified on "
               f"{report['verify_frames']} frames  torch fp32 {report['torch_fp32_psnr_hr']:.3f} dB vs HR")
    click.echo(f"plan     margin {plan['margin']}{' (auto)' if plan['margin_check'] else ''}, {len(plan['shapes'])} "
               f"shape(s), {plan['runs_per_frame']:.1f} runs/frame, {plan['pixels_run_per_needed']:.2f}x the frame's "
               f"pixels, {plan['frame_plans']} distinct frame plan(s)")
    click.echo("\n".join(format_table(report)))
    if report.get("updates"):
        click.echo(updates_line(report["updates"]))
    click.echo(f"clients  {format_variant_bytes(report['clients'])}")
    click.echo(f"bundle {report['bundle']}  (report.md inside)")


def main() -> None:
    export_command(prog_name="stdo-export")


if __name__ == "__main__":
    main()
