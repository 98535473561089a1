"""stdo-export: parse options, call stdo.export.pipeline.export, print the verification table."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.bundle import format_variant_bytes
from stdo.errors import StdoError
from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.export.pipeline import UPDATES, ExportOptions, export, format_table
from stdo.runtimes import EXPORT_FORMATS, QUANTIZE, parse_list
from stdo.train.methods import METHODS


def _video_crf_is_gone(ctx, param, value):
    if value is not None:
        raise StdoError("--video-crf is gone: the bundle ships the RUN's own LR stream byte for byte; choose it at "
                        "clustering with stdo-cluster --codec/--crf/--bitrate/--lossless")


def _formats(ctx, param, value: str) -> tuple[str, ...]:
    return parse_list(value, EXPORT_FORMATS, "--format")


def _quantize(ctx, param, value: str) -> tuple[str, ...]:
    return parse_list(value, QUANTIZE, "--quantize") if value else ()


def _margin(ctx, param, value: str) -> int | None:
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise StdoError(f"--plan-margin {value!r} is not a number: give LR pixels (e.g. 4) or auto") from None


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
@click.option("--method", type=click.Choice(METHODS), default="stdo", show_default=True,
              help="Which trained method of the RUN to export (RUN/models/METHOD).")
@click.option("--format", "formats", default="onnx", show_default=True, callback=_formats,
              help="Comma-separated: onnx, tflite, coreml.")
@click.option("--quantize", default="", callback=_quantize,
              help="Comma-separated extra precisions: int8 (all formats, calibrated on the clip), fp16 (tflite).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Bundle folder [default: RUN/bundle]. An earlier bundle there is replaced only once the new one "
                   "is complete and verified.")
@click.option("--calibration", type=int, default=64, show_default=True,
              help="LR windows per model for int8 calibration, taken from the patches that model serves.")
@click.option("--verify-frames", type=int, default=30, show_default=True,
              help="Frames (evenly spaced) on which every artifact is verified; 0 = all.")
@click.option("--video-crf", type=int, hidden=True, callback=_video_crf_is_gone)
@click.option("--plan-shapes", type=int, default=3, show_default=True,
              help="Window shapes of the inference plan (1..8): more shapes merge more patches per run; a TFLite "
                   "file, a fixed-shape runtime's, holds one signature per shape.")
@click.option("--plan-margin", default="auto", show_default=True, callback=_margin,
              help="LR pixels of context around what each window keeps. auto: the least that leaves the models' "
                   "output unchanged on a few frames (under 0.005 dB); the receptive radius is exact always.")
@click.option("--strict", is_flag=True,
              help="Fail (exit 2, the earlier bundle kept) when a variant misses its quality target.")
@click.option("--int8-max-loss", "int8_max_loss_db", type=float, default=ExportOptions.int8_max_loss_db,
              show_default=True, metavar="DB",
              help="int8's quality target: its PSNR against HR at most this many dB below fp32's.")
@click.option("--update", type=click.Choice(UPDATES), default="auto", show_default=True,
              help="Ship each model file as a coded update of the prior's file that clients carry (a few KB where "
                   "training changed little): auto when the models started from a carried prior (stdo-train --init "
                   "prior), on to require it, off for whole files.")
@click.option("--priors", type=click.Path(path_type=Path, file_okay=False),
              help="The priors clients carry (priors.json and their files) [default: stdo's own].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads of onnxruntime / LiteRT during verification.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv shows the converters' own output).")
def export_command(run, method, formats, quantize, out, calibration, verify_frames, video_crf, plan_shapes, plan_margin,
                   strict, int8_max_loss_db, update, priors, threads, quiet, verbose):
    """Export the trained models of a RUN as ONNX, TFLite and CoreML, verify them, and write the bundle.

    The bundle (RUN/bundle by default) holds manifest.json, the model map, the inference plan
    (the model runs a client makes per frame), the LR video, models/ and report.json + report.md:
    every artifact's bytes, PSNR against the fp32
    PyTorch output and against HR (RGB and Y), and time per window. The LR video is the
    RUN's own stream (frames/lr.mp4) byte for byte: choose it with stdo-cluster. The bundle is built in a temp
    folder and moved into place only when complete.
    """
    setup_logging(verbose)
    options = ExportOptions(run=run, method=method, formats=formats, quantize=quantize, out=out,
                            calibration_windows=calibration, verify_frames=verify_frames, plan_shapes=plan_shapes,
                            plan_margin=plan_margin, strict=strict, int8_max_loss_db=int8_max_loss_db,
                            update=update, priors=priors, threads=threads)
    with StageBars(unit="step", disable=quiet) as bars:
        report = export(options, progress=bars)
    plan = report["plan"]
    click.echo(f"method {report['method']}  x{report['scale']}  {report['models']} model(s)  verified on "
               f"{report['verify_frames']} frames  torch fp32 {report['torch_fp32_psnr_hr']:.3f} dB vs HR")
    click.echo(f"plan     margin {plan['margin']}{' (auto)' if plan['margin_check'] else ''}, {len(plan['shapes'])} "
               f"shape(s), {plan['runs_per_frame']:.1f} runs/frame, {plan['pixels_run_per_needed']:.2f}x the frame's "
               f"pixels, {plan['frame_plans']} distinct frame plan(s)")
    click.echo("\n".join(format_table(report)))
    click.echo(f"clients  {format_variant_bytes(report['clients'])}")
    click.echo(f"bundle {report['bundle']}  (report.md inside)")


def main() -> None:
    export_command(prog_name="stdo-export")


if __name__ == "__main__":
    main()
