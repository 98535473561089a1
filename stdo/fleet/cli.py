"""stdo-fleet: parse options, call stdo.fleet.engine.run_fleet, print the catalogue's summary."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from stdo.clitools import setup_logging, stdo_command
from stdo.fleet.engine import FleetOptions, run_fleet
from stdo.fleet.jobs import COLUMNS, read_jobs
from stdo.options import click_options, from_params


@stdo_command(
    "fleet",
    epilog=f"""\b
JOBS columns (only video is required; the others default as in the stage commands):
  {', '.join(COLUMNS[:10])},
  {', '.join(COLUMNS[10:])}
format and quantize take comma-separated lists (quote them in a CSV); workers > 1
trains under torchrun inside the task (one node's CPUs or GPUs). A row with a budget
(120KB, 400kbit/s) is delivered as stdo-deliver delivers it: its crf and method may
list several values, each tried, and the best played PSNR within the budget is kept
(runs/<name>/points.md).

\b
Examples:
  stdo-fleet videos.csv fleet/                 (a local Ray on this machine)
  stdo-fleet videos.jsonl /shared/fleet --address auto --train-gpus 1
  stdo-fleet videos.csv fleet/ --max-in-flight 4 --num-cpus 8

\b
videos.csv:
  video,steps,format,quantize
  clips/a.mp4,2000,"onnx,tflite",int8
  clips/b.mp4,1000,onnx,


videos.csv with budgets:
  video,budget,crf,method
  clips/a.mp4,80KB,"23,27,31","stdo,jstdo"
  clips/b.mp4,400kbit/s,,
""",
)
@click.argument("jobs", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click_options(FleetOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def fleet_command(quiet: bool, verbose: int, **fields) -> None:
    """Run every video of JOBS through cluster -> train -> export as Ray tasks.

    JOBS is a CSV (with a header) or JSONL file, one video per row with its own options; every row
    is checked before anything starts. Rows are written to OUT/catalogue.jsonl as videos finish:
    status, error, run id, PSNR against bicubic, bundle bytes, seconds and node of each stage.
    Rerunning the same command skips the videos already done with the same options and retries
    the others from their first unfinished stage.
    """
    setup_logging(verbose)
    options = from_params(FleetOptions, fields)
    total = len(read_jobs(options.jobs))  # checked again by run_fleet; here for the bar's length
    bar = tqdm(total=total, desc="videos", unit="video", disable=quiet, file=sys.stderr, dynamic_ncols=True)

    def on_video(row: dict) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{row['name']}: {row['status']}", refresh=False)

    try:
        result = run_fleet(options, progress=on_video)
    finally:
        bar.close()
    done, failed = result.count("done"), len(result.names) - result.count("done")
    click.echo(f"{done} done ({len(result.skipped)} of them earlier), {failed} failed, in {result.seconds:.1f} s; "
               f"catalogue: {Path(options.out) / 'catalogue.csv'}, summary: {Path(options.out) / 'summary.md'}")
    for row in (result.rows[name] for name in result.names):
        if row["status"] != "done":
            click.echo(f"  {row['name']}: {row['stage']}: {row['error']}")
    if failed:
        sys.exit(1)


def main() -> None:
    fleet_command(prog_name="stdo-fleet")


if __name__ == "__main__":
    main()
