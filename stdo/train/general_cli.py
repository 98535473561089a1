"""stdo-general: parse options, call stdo.train.general.train_general, print where the model went."""

from __future__ import annotations

from pathlib import Path

import click

from stdo.clips import CLIPS, clip_path
from stdo.clitools import setup_logging, stdo_command
from stdo.errors import StdoError
from stdo.models import list_models
from stdo.stream import CODECS
from stdo.train.cli import StepBar
from stdo.train.general import GeneralOptions, train_general
from stdo.train.loop import AMP_MODES, SCHEDULES, TrainConfig


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
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--scale", type=int, default=4, show_default=True, help="Upscaling factor the model learns.")
@click.option("--model", type=click.Choice(list_models(patch=True)), default="wdsr_a",
              show_default=True, help="WDSR size (wdsr_a: the released STDO scorer's).")
@click.option("--frames", type=int, default=60, show_default=True,
              help="Frames from the start of each clip (a photograph is panned over at most 16).")
@click.option("--crf", "crfs", default="", metavar="CRF[,CRF...]",
              help="Code the LR frames with --codec at each of these CRFs (codec-aware, as a prior is trained); "
                   "default: clean bicubic LR.")
@click.option("--codec", type=click.Choice(sorted(CODECS)), default="h264", show_default=True,
              help="Codec of --crf.")
@click.option("--steps", type=int, default=TrainConfig.steps, show_default=True, help="Optimizer steps.")
@click.option("--batch", type=int, default=TrainConfig.batch, show_default=True, help="Crops per step.")
@click.option("--crop-size", "crop", type=int, default=TrainConfig.crop, show_default=True, help="LR crop size.")
@click.option("--learning-rate", "learning_rate", type=float, default=TrainConfig.lr, show_default=True, help="Adam learning rate.")
@click.option("--amp", type=click.Choice(AMP_MODES), default="auto", show_default=True, help="Mixed precision.")
@click.option("--context", type=int, default=GeneralOptions.context, show_default=True,
              help="LR pixels read around each crop (the loss covers the crop only).")
@click.option("--schedule", type=click.Choice(sorted(SCHEDULES)), default=TrainConfig.schedule, show_default=True,
              help="Learning-rate shape: cosine, or wsd (warmup, stable, decay: a rerun with more --steps extends it).")
@click.option("--validation", type=click.Path(path_type=Path), default=None,
              help="A held-out prior set (python -m stdo.train.priorset): it picks the kept state and gives the curve.")
@click.option("--work", type=click.Path(path_type=Path), default=None,
              help="Folder of the resumable state, snapshots and validation curve (default: beside --out).")
@click.option("--init", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Start from this checkpoint's weights (continue a prior on more steps or content).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed.")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def general_command(sources, out, overwrite, scale, model, frames, crfs, codec, steps, batch, crop, learning_rate, amp,
                    context, schedule, validation, work, init, seed, device, quiet, verbose):
    """Train a general WDSR over SOURCES (videos, frame folders or photographs; default: the built-in clips),
    for `--scorer general` or as the prior `stdo-train --init` starts from.

    LR is made by bicubic downscaling, then coded at each --crf; crops come from every clip in proportion
    to its frames; the best state seen by the periodic evaluation is kept. Writes a bare WDSR state dict.
    """
    setup_logging(verbose)
    sources = list(sources) or [clip_path(name) for name in CLIPS]
    config = TrainConfig(steps=steps, batch=batch, crop=crop, lr=learning_rate, amp=amp, seed=seed, device=device,
                         schedule=schedule, eval_points=40 if validation else TrainConfig.eval_points)
    bar = StepBar(disable=quiet)
    try:
        report = train_general(GeneralOptions(sources=sources, out=out, scale=scale, model=model, frames=frames,
                                              crfs=parse_crfs(crfs), codec=codec, config=config,
                                              overwrite=overwrite, context=context, validation=validation, work=work,
                                              init=init),
                               progress=bar)
    finally:
        bar.close()
    click.echo(f"general x{scale} {model} over {report['clips']} clip(s), {report['frames']} frames, "
               f"{report['steps']} steps (kept step {report['kept_step']})")
    where = "the held-out validation set" if validation else "its evaluation crops"
    click.echo(f"PSNR on {where} {report['eval_psnr']:.3f} dB (bicubic {report['eval_psnr_start']:.3f} dB)")
    click.echo(f"wrote {report['out']}: stdo-cluster SOURCE RUN --scorer general --checkpoint {report['out']}")


def parse_crfs(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise StdoError(f"--crf {text!r}: give whole CRFs separated by commas, e.g. 18,23,28,33") from None


def main() -> None:
    general_command(prog_name="stdo-general")


if __name__ == "__main__":
    main()
