"""stdo-play: parse options, call stdo.play.pipeline.play, print speed, time split and PSNR."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.play.pipeline import PlayOptions, play
from stdo.play.report import format_table
from stdo.runtimes import BACKENDS, PRECISIONS, parse_list
from stdo.stream import CODECS


@stdo_command(
    "play",
    epilog="""\b
Examples:
  stdo-play runs/clip/bundle --out sr.mp4
  stdo-play runs/clip/bundle --backend litert --precision int8 --out frames/
  stdo-play runs/clip/bundle --compare --out side_by_side.mp4 --hr runs/clip/frames/hr.npy
  stdo-play runs/clip/bundle --hr clip.mp4 --report psnr.md --plot psnr.png
  stdo-play runs/clip/bundle --precision int8 --hr runs/clip/frames/hr.npy --rate
""",
)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(list(BACKENDS)), default="onnxruntime", show_default=True,
              help="torch runs models/*.pt, onnxruntime the .onnx files, litert the .tflite files.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="Which of the bundle's variants to run (int8/fp16 where exported).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the SR video: an .mp4 file (H.264), or a folder (no suffix) of PNG frames.")
@click.option("--compare", is_flag=True, help="Write bicubic | stdo side by side instead of stdo alone.")
@click.option("--hr", type=click.Path(path_type=Path),
              help="HR reference (video, frame folder or RUN/frames/hr.npy): report PSNR per frame and in total.")
@click.option("--lr-video", "video", type=click.Path(path_type=Path),
              help="Play this LR video instead of the bundle's own (it must match the bundle).")
@click.option("--report", type=click.Path(path_type=Path), help="Write the report: .json (per-frame PSNR) or .md.")
@click.option("--plot", type=click.Path(path_type=Path), help="PNG plot of PSNR per frame, bicubic vs stdo (needs --hr).")
@click.option("--shave", type=int, metavar="PIXELS",
              help="Border pixels PSNR leaves out (0..64) [default: the bundle's scale]; stdo-deliver scores every "
                   "scale with the largest one's.")
@click.option("--rate", is_flag=True,
              help="With --hr: also encode the HR frames with each --rate-codec (yuv420p, CRF search) to find the "
                   "cheapest HR stream reaching the models' RGB PSNR, and report its bytes beside the bundle's "
                   "(LR video + the models played + model map).")
@click.option("--rate-codec", "rate_codecs", default=",".join(PlayOptions.rate_codecs), show_default=True,
              metavar="CODEC[,CODEC]", help=f"The HR streams --rate compares with: {', '.join(CODECS)}.")
@click.option("--overwrite", is_flag=True, help="Replace --out/--report/--plot files that exist.")
@click.option("--out-crf", "crf", type=int, default=18, show_default=True, help="H.264 CRF of the output mp4 (yuv420p, BT.709 limited range, tagged); 0 = lossless RGB H.264.")
@click.option("--out-preset", "preset", default="veryfast", show_default=True,
              help="x264 preset of the output mp4 (ultrafast .. placebo): slower presets make smaller files and take "
                   "the cores from inference while playing.")
@click.option("--frames-per-batch", "batch", type=int, default=4, show_default=True, help="Frames per inference batch.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads of onnxruntime / LiteRT.")
@click.option("--priors", type=click.Path(path_type=Path, file_okay=False),
              help="The priors this client carries, which a bundle's coded model updates are rebuilt from "
                   "[default: stdo's own].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def play_command(bundle, backend, precision, out, compare, hr, video, report, plot, shave, rate, rate_codecs, overwrite,
                 crf, preset, batch, threads, priors, quiet, verbose):
    """Play a bundle: decode its LR video, upscale every frame with its models by the bundle's
    inference plan, and write the result.

    The plan lists, per frame, each model run: an LR window, and the part of its output that
    is kept. Runs of one model and window shape are batched, outputs are written in place into
    the frame, decoding runs ahead and encoding behind in threads. Always reports frames per
    second and where the time went (decode, inference, stitch, encode); with --hr also PSNR
    against HR, beside bicubic.
    """
    setup_logging(verbose)
    options = PlayOptions(bundle=bundle, backend=backend, precision=precision, out=out, compare=compare, hr=hr,
                          video=video, overwrite=overwrite, crf=crf, preset=preset, batch=batch, threads=threads,
                          priors=priors, report=report, plot=plot, shave=shave, rate=rate,
                          rate_codecs=parse_list(rate_codecs, tuple(CODECS), "--rate-codec"))
    with StageBars(disable=quiet) as bars:
        result = play(options, progress=bars)
    click.echo("\n".join(format_table(result)))
    for path in (out, report, plot):
        if path is not None:
            click.echo(f"wrote {path}")


def main() -> None:
    play_command(prog_name="stdo-play")


if __name__ == "__main__":
    main()
