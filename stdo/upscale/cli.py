"""stdo-upscale: parse options, call stdo.upscale.pipeline.upscale, print speed and PSNR."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from stdo.clitools import setup_logging, stdo_command
from stdo.train.methods import METHODS
from stdo.upscale.pipeline import UPSCALE_BACKENDS, UpscaleOptions, upscale


@stdo_command(
    "upscale",
    epilog="""\b
Examples:
  stdo-upscale runs/clip --method mfwdsr --out sr.mp4
  stdo-upscale runs/clip --method wdsr-large --backend onnxruntime
""",
)
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--method", type=click.Choice(METHODS), default="mfwdsr", show_default=True,
              help="The trained method of the RUN to run (RUN/models/METHOD).")
@click.option("--backend", type=click.Choice(UPSCALE_BACKENDS), default="torch", show_default=True,
              help="torch runs the trained weights; onnxruntime runs them exported to ONNX here (brvsr: its two "
                   "step graphs; vinr: torch only).")
@click.option("--out", type=click.Path(path_type=Path), help="Write the SR video (.mp4, H.264 yuv420p).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--out-crf", "crf", type=int, default=18, show_default=True, help="H.264 CRF of --out.")
@click.option("--out-preset", "preset", default="veryfast", show_default=True, help="x264 preset of --out.")
@click.option("--frames-per-batch", "batch", type=int, default=4, show_default=True, help="Frames per inference batch.")
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime threads.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def upscale_command(run, method, backend, out, overwrite, crf, preset, batch, threads, quiet, verbose):
    """Upscale a RUN's whole clip on a server with a trained method (server-side: mfwdsr, wdsr-large, brvsr, vinr).

    One-model methods run on whole frames (a multi-frame model reads frames t-r..t+r; brvsr runs
    its recurrences over the clip with DIS flow; vinr reads frame pairs); methods with several
    models run patch-wise by their model map. Reports inference frames per second
    and RGB PSNR, Y-PSNR and SSIM against the RUN's HR frames beside bicubic.
    """
    setup_logging(verbose)
    options = UpscaleOptions(run=run, method=method, backend=backend, out=out, overwrite=overwrite, crf=crf,
                             preset=preset, batch=batch, threads=threads)
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
