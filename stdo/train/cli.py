"""stdo-train: parse options, call stdo.train.pipeline.train, print the report table."""

from __future__ import annotations

import os
from pathlib import Path

import click
from tqdm import tqdm

from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.models import list_models
from stdo.rundir import REPORT, method_dir
from stdo.train import distributed as dist_utils
from stdo.train.loop import AMP_MODES, OPT_LEVELS, TrainConfig
from stdo.train.methods import CAFM_CHUNKS, METHODS, TUNES, MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.train.sampling import WEIGHTINGS


class StepBar:
    """One tqdm bar over all steps this process trains, showing the job, loss and batch PSNR."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self.bar: tqdm | None = None
        self.done: dict[str, int] = {}

    def __call__(self, job: str, step: int, steps: int, loss: float, psnr: float) -> None:
        if self.bar is None:
            self.bar = tqdm(desc="train", unit="step", disable=self.disable, dynamic_ncols=True)
        if job not in self.done:
            self.done[job] = step - 1
            self.bar.total = (self.bar.total or 0) + steps
            self.bar.update(step - 1)
        self.bar.update(step - self.done[job])
        self.done[job] = step
        self.bar.set_postfix_str(f"{job} loss {loss:.4f} psnr {psnr:.2f} dB", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_report(r: dict, path: Path) -> str:
    b = r.get("bicubic")
    lines = [
        f"method {r['method']}  x{r['scale']}  {r['frames']} frames  {r['num_models']} model(s)  "
        f"{r['params']:,} params ({r['bytes_fp32'] / 1024:.0f} KiB fp32)",
    ]
    if b:
        lines += [
            f"{'':10}{'RGB PSNR':>12}{'Y-PSNR':>9}{'STDO PSNR':>12}{'SSIM':>9}",
            f"{r['method']:10}{r['psnr_video']:12.3f}{r['psnr_y_video']:9.3f}{r['psnr_stdo']:12.3f}{r['ssim']:9.4f}",
            f"{'bicubic':10}{b['psnr_video']:12.3f}{b['psnr_y_video']:9.3f}{b['psnr_stdo']:12.3f}{b['ssim']:9.4f}",
            f"{'gain':10}{r['psnr_video'] - b['psnr_video']:+12.3f}{r['psnr_y_video'] - b['psnr_y_video']:+9.3f}"
            f"{r['psnr_stdo'] - b['psnr_stdo']:+12.3f}",
            f"{'chunk':>5}{'patches':>9}{'PSNR':>9}{'bicubic':>9}",
        ]
        for c, cb in zip(r["chunks"], b["chunks"]):
            lines.append(f"{c['chunk']:>5}{c['patches']:>9}{c['psnr']:9.3f}{cb['psnr']:9.3f}")
    kept = [f"{j['name']} step {j['kept_step']}" for j in r.get("jobs", []) if j.get("kept_step", j["steps"]) != j["steps"]]
    if kept:
        lines.append("kept the best evaluated state: " + ", ".join(kept) + " (the rest: their last step)")
    lines.append(f"steps {r['steps']}  train {r['train_seconds']:.1f} s  wall {r['wall_seconds']:.1f} s  "
                 f"device {r['device']} x{r['world_size']}  amp {r['amp']}")
    lines.append(f"report {path}")
    return "\n".join(lines)


@stdo_command(
    "train",
    epilog="""\b
Examples:
  stdo-train runs/clip --method stdo --steps 2000
  stdo-train runs/clip --method jstdo --steps 2000 --sampling uniform
  stdo-train runs/clip --method cafm --cafm-chunks stdo --amp bf16
  torchrun --standalone --nproc_per_node 2 -m stdo.train.cli runs/clip --method awdnn
Rerunning the same command resumes from the last checkpoint.
""",
)
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--method", type=click.Choice(METHODS), default="stdo", show_default=True,
              help="stdo: a model per chunk; jstdo: one joint model, data-aware sampling; awdnn: one model; "
                   "nas: a model per time segment; cafm: shared backbone + per-chunk modulation; prior: the carried "
                   "prior, untrained. Server-side: mfwdsr: one multi-frame WDSR (frames t-r..t+r); wdsr-large: "
                   "one WDSR of ~4.8M parameters; brvsr: bidirectional recurrent VSR with DIS flow; vinr: "
                   "continuous space-time SR (any scale, frames between).")
@click.option("--steps", type=int, default=TrainConfig.steps, show_default=True,
              help="Optimizer-step budget of the whole method (split evenly over per-chunk models).")
@click.option("--model", type=click.Choice(list_models(patch=True)), default="wdsr_a_mobile",
              show_default=True, help="wdsr_a: STDO's 16 blocks x 32 units x width 4; wdsr_a_mobile: 4 x 16 x 4.")
@click.option("--blocks", type=int, help="Override the number of residual blocks (brvsr: per step; vinr: encoder).")
@click.option("--units", type=int, help="Override the residual units (channels; brvsr/vinr: feature channels).")
@click.option("--width", type=float, help="Override the width multiplier inside blocks.")
@click.option("--batch", type=int, default=TrainConfig.batch, show_default=True, help="Crops per optimizer step.")
@click.option("--learning-rate", "learning_rate", type=float, default=TrainConfig.lr, show_default=True, help="Adam learning rate (10% warmup, then cosine to 1%).")
@click.option("--crop-size", "crop", type=int, default=TrainConfig.crop, show_default=True, help="LR crop size in pixels.")
@click.option("--no-augment", is_flag=True, help="No random flips and rotations.")
@click.option("--amp", type=click.Choice(AMP_MODES), default="auto", show_default=True,
              help="Mixed precision: auto = fp16+GradScaler on CUDA, bf16 on CPUs with bf16 units, else fp32.")
@click.option("--opt-level", type=click.Choice(sorted(OPT_LEVELS)),
              help="apex-era alias of --amp: O0 = off, O1/O2 = auto (apex.amp became torch.amp).")
@click.option("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every, show_default=True, help="Steps between checkpoints.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the model: about half a minute to start, faster steps on long runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and initialization.")
@click.option("--segments", type=int, help="Time segments for nas and cafm [default: the RUN's chunk count].")
@click.option("--cafm-chunks", type=click.Choice(CAFM_CHUNKS), default="time", show_default=True,
              help="What cafm modulates by: time segments (CaFM) or the RUN's STDO chunks.")
@click.option("--sampling", type=click.Choice(WEIGHTINGS), default="error", show_default=True,
              help="jstdo: draw chunks by count x current error, or by count alone.")
@click.option("--radius", type=int, default=1, show_default=True,
              help="mfwdsr: frames t-r .. t+r read at once; 0 = the single-frame control of equal width.")
@click.option("--joint-start", type=float,
              help="stdo, cafm: share of the steps spent first on one joint model (jstdo's) that every chunk's model "
                   "(cafm: the shared backbone) then starts from, running the rest of its learning-rate schedule; "
                   "0 = plain, 1 = jstdo's model copied per chunk.  [default: stdo 0.75, cafm 0]")
@click.option("--init", default="prior", show_default=True, metavar="prior|scratch|PATH",
              help="Where on-device models start: prior (the shipped prior of --model at the RUN's scale, which "
                   "clients carry, when there is one and the model is not resized; else scratch), scratch (bicubic), "
                   "or a stdo-general checkpoint.")
@click.option("--tune", type=click.Choice(TUNES),
              help="What training may change of its start: all weights, channels (each conv's per-channel gain "
                   "and bias: a small update of a prior, a few KB per model in int8), biases, or sparse (channels "
                   "plus the --sparse-share of the conv weights that move most from the prior).  "
                   "[default: channels from a prior, all from scratch]")
@click.option("--sparse-share", type=float, default=MethodOptions.sparse_share, show_default=True,
              help="--tune sparse: share of the body's conv weights that may differ from the prior (the rest are "
                   "reset to it after every step).")
@click.option("--keep-last", is_flag=True,
              help="Keep the last state of each model, not the best seen by the periodic evaluation on its own "
                   "training crops (which never keeps a model below its start, bicubic).")
@click.option("--sequence", type=int, default=5, show_default=True,
              help="brvsr: consecutive frames per training sample (the recurrence runs over them).")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cuda = this rank's GPU under torchrun).")
@click.option("--restart", is_flag=True, help="Discard saved training state and start over.")
@click.option("--no-eval", is_flag=True, help="Skip the evaluation after training.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def train_command(run, method, steps, model, blocks, units, width, batch, learning_rate, crop, no_augment, amp,
                  opt_level, checkpoint_every, compile_, seed, segments, cafm_chunks, sampling, radius, joint_start,
                  init, tune, sparse_share, keep_last, sequence, device, restart, no_eval, quiet, verbose):
    """Overfit WDSR models to the chunks of a RUN directory, then evaluate them.

    Writes RUN/models/METHOD/: model<i>.pt (state dicts), model_map.npz (which model serves
    which patch), state/ (to resume) and report.json (whole-video PSNR, STDO-protocol PSNR,
    SSIM, per-chunk PSNR, bicubic on the same frames, params, steps, time, device, amp).
    """
    setup_logging(verbose)
    overrides = {k: v for k, v in (("num_blocks", blocks), ("num_residual_units", units),
                                   ("width_multiplier", width)) if v is not None}
    config = TrainConfig(steps=steps, batch=batch, lr=learning_rate, crop=crop, amp=opt_level or amp,
                         checkpoint_every=checkpoint_every, seed=seed, augment=not no_augment, device=device,
                         compile=compile_, keep_best=not keep_last)
    options = TrainOptions(
        run=run, method=method, config=config, restart=restart, evaluate=not no_eval,
        method_options=MethodOptions(model=model, overrides=overrides, segments=segments, cafm_chunks=cafm_chunks,
                                     sampling=sampling, radius=radius,
                                     sequence=sequence, joint_start=joint_start,
                                     init=init, tune=tune, sparse_share=sparse_share),
    )
    quiet = quiet or int(os.environ.get("RANK", "0")) != 0
    bar, eval_bar = StepBar(disable=quiet), StageBars(disable=quiet)

    def on_evaluated(frames: int) -> None:
        bar.close()  # training is over
        eval_bar("evaluate", frames, None)

    try:
        report = train(options, progress=bar, eval_progress=on_evaluated)
    finally:
        bar.close()
        eval_bar.close()
        dist_utils.shutdown()
    if report is not None:
        click.echo(format_report(report, method_dir(run, method) / REPORT))


def main() -> None:
    train_command(prog_name="stdo-train")


if __name__ == "__main__":
    main()
