"""stdo-play: parse options, call stdo.play.pipeline.play, print speed, time split and PSNR."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.play.pipeline import PlayOptions, play
from stdo.play.report import format_table
from stdo.options import click_options, from_params


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
@click_options(PlayOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def play_command(quiet: bool, verbose: int, **fields) -> None:
    """Play a bundle: decode its LR video, upscale every frame with its models by the bundle's
    inference plan, and write the result.

    The plan lists, per frame, each model run: an LR window, and the part of its output that
    is kept. Runs of one model and window shape are batched, outputs are written in place into
    the frame, decoding runs ahead and encoding behind in threads. Always reports frames per
    second and where the time went (decode, inference, stitch, encode); with --hr also PSNR
    against HR, beside bicubic.
    """
    setup_logging(verbose)
    options = from_params(PlayOptions, fields)
    with StageBars(disable=quiet) as bars:
        result = play(options, progress=bars)
    click.echo("\n".join(format_table(result)))
    for path in (options.out, options.report, options.plot):
        if path is not None:
            click.echo(f"wrote {path}")


def main() -> None:
    play_command(prog_name="stdo-play")


if __name__ == "__main__":
    main()
