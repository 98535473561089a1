"""stdo-train: parse options, call stdo.train.pipeline.train, print the report table."""

from __future__ import annotations

import os
from pathlib import Path

import click
from tqdm import tqdm

from stdo.clitools import StageBars, setup_logging, stdo_command
from stdo.rundir import REPORT, method_dir
from stdo.train import distributed as dist_utils
from stdo.options import click_options, from_params
from stdo.train.loop import OPT_LEVELS, TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train


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
@click_options(TrainOptions, only=("method",))
@click_options(TrainConfig, only=("steps",))
@click_options(MethodOptions, only=("model", "blocks", "units", "width"))
@click_options(TrainConfig, only=("batch", "crop_size", "learning_rate", "schedule", "augment", "amp"))
@click.option("--opt-level", type=click.Choice(sorted(OPT_LEVELS)),
              help="apex-era alias of --amp: O0 = off, O1/O2 = auto (apex.amp became torch.amp).")
@click_options(TrainConfig, only=("checkpoint_every", "compile", "seed"))
@click_options(MethodOptions, only=("segments", "cafm_chunks", "sampling", "radius", "joint_start", "init", "tune",
                                    "sparse_share", "sequence"))
@click_options(TrainConfig, only=("keep_last", "device"))
@click_options(TrainOptions, only=("restart", "evaluate"))
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def train_command(run: Path, opt_level: str | None, quiet: bool, verbose: int, **fields) -> None:
    """Overfit WDSR models to the chunks of a RUN directory, then evaluate them.

    Writes RUN/models/METHOD/: model<i>.pt (state dicts), model_map.npz (which model serves
    which patch), state/ (to resume) and report.json (whole-video PSNR, STDO-protocol PSNR,
    SSIM, per-chunk PSNR, bicubic on the same frames, params, steps, time, device, amp).
    """
    setup_logging(verbose)
    if opt_level:
        fields["amp"] = opt_level  # resolved by the training as apex-era names are
    options = from_params(TrainOptions, fields, run=run, config=from_params(TrainConfig, fields),
                          method_options=from_params(MethodOptions, fields))
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
        click.echo(format_report(report, method_dir(run, options.method) / REPORT))


def main() -> None:
    train_command(prog_name="stdo-train")


if __name__ == "__main__":
    main()
