"""stdo-upscale: parse options, call stdo.upscale.pipeline.upscale, print speed and PSNR."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from stdo.clitools import setup_logging, stdo_command
from stdo.options import click_options, from_params
from stdo.upscale.pipeline import UpscaleOptions, upscale


@stdo_command(
    "upscale",
    epilog="""\b
Examples:
  stdo-upscale runs/clip --method mfwdsr --out sr.mp4
  stdo-upscale runs/clip --method wdsr-large --backend onnxruntime
""",
)
@click.argument("run", type=click.Path(path_type=Path))
@click_options(UpscaleOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def upscale_command(quiet: bool, verbose: int, **fields) -> None:
    """Upscale a RUN's whole clip on a server with a trained method (server-side: mfwdsr, wdsr-large, brvsr, vinr).

    One-model methods run on whole frames (a multi-frame model reads frames t-r..t+r; brvsr runs
    its recurrences over the clip with DIS flow; vinr reads frame pairs); methods with several
    models run patch-wise by their model map. Reports inference frames per second
    and RGB PSNR, Y-PSNR and SSIM against the RUN's HR frames beside bicubic.
    """
    setup_logging(verbose)
    options = from_params(UpscaleOptions, fields)
    bars: list[tqdm] = []  # opened at the first frame, so a refused command prints only its error

    def progress(frames: int) -> None:
        if not bars:
            bars.append(tqdm(desc="upscale", unit="frame", disable=quiet, leave=False))
        bars[0].update(frames)

    try:
        report = upscale(options, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    p = report["psnr"]
    click.echo(f"{report['frames']} frames  {report['fps']:.2f} fps  {report['method']} ({report['backend']}, "
               f"{report['models']} model(s), {report['reads']})")
    click.echo(f"RGB PSNR model {p['model']:.3f} dB  bicubic {p['bicubic']:.3f} dB  gain {p['model'] - p['bicubic']:+.3f} dB")
    click.echo(f"Y-PSNR   model {p['model_y']:.3f} dB  bicubic {p['bicubic_y']:.3f} dB  "
               f"gain {p['model_y'] - p['bicubic_y']:+.3f} dB")
    click.echo(f"SSIM     model {p['model_ssim']:.4f}  bicubic {p['bicubic_ssim']:.4f}")
    if report["out"]:
        click.echo(f"wrote {report['out']}")


def main() -> None:
    upscale_command(prog_name="stdo-upscale")


if __name__ == "__main__":
    main()
