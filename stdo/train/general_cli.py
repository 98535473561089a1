"""stdo-general: parse options, call stdo.train.general.train_general, print where the model went."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.clips import CLIPS, clip_path
from stdo.clitools import setup_logging, stdo_command
from stdo.options import click_options, from_params
from stdo.train.cli import StepBar
from stdo.train.general import GeneralOptions, train_general
from stdo.train.loop import TrainConfig


@stdo_command(
    "general",
    epilog="""\b
Examples:
  stdo-general --out general-x4.pt                      (the built-in clips)
  stdo-general a.mp4 b.mp4 frames/ --out general-x4.pt --steps 4000
  stdo-cluster clip.mp4 runs/clip --scorer general --checkpoint general-x4.pt
  stdo-general photos/*.jpg --crf 18,23,28,33 --model wdsr_a_mobile --out prior-x4.pt
  stdo-general SET --validation HELD_OUT --schedule wsd --steps 6000 --work WORK --out prior-x4.pt
                                                        (make prior: SET, HELD_OUT built by stdo.train.priorset)
Rerunning the same command resumes from the last checkpoint.
""",
)
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The checkpoint to write (.pt).")
@click_options(GeneralOptions, only=("overwrite", "scale", "model", "frames", "crf", "codec"))
@click_options(TrainConfig, only=("steps", "batch", "crop_size", "learning_rate", "amp"))
@click_options(GeneralOptions, only=("context",))
@click_options(TrainConfig, only=("schedule",))
@click_options(GeneralOptions, only=("validation", "work", "init"))
@click_options(TrainConfig, only=("seed", "device"))
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def general_command(sources: tuple[Path, ...], out: Path, quiet: bool, verbose: int, **fields) -> None:
    """Train a general WDSR over SOURCES (videos, frame folders or photographs; default: the built-in clips),
    for `--scorer general` or as the prior `stdo-train --init` starts from.

    LR is made by bicubic downscaling, then coded at each --crf; crops come from every clip in proportion
    to its frames; the best state seen by the periodic evaluation is kept. Writes a bare WDSR state dict.
    """
    setup_logging(verbose)
    sources = list(sources) or [clip_path(name) for name in CLIPS]
    validation = fields["validation"]
    config = from_params(TrainConfig, fields, eval_points=40 if validation else TrainConfig.eval_points)
    bar = StepBar(disable=quiet)
    try:
        report = train_general(from_params(GeneralOptions, fields, sources=sources, out=out, config=config),
                               progress=bar)
    finally:
        bar.close()
    scale, model = fields["scale"], fields["model"]
    click.echo(f"general x{scale} {model} over {report['clips']} clip(s), {report['frames']} frames, "
               f"{report['steps']} steps (kept step {report['kept_step']})")
    where = "the held-out validation set" if validation else "its evaluation crops"
    click.echo(f"PSNR on {where} {report['eval_psnr']:.3f} dB (bicubic {report['eval_psnr_start']:.3f} dB)")
    click.echo(f"wrote {report['out']}: stdo-cluster SOURCE RUN --scorer general --checkpoint {report['out']}")


def main() -> None:
    general_command(prog_name="stdo-general")


if __name__ == "__main__":
    main()
