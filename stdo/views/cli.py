"""stdo-views: parse options, call stdo.views.pipeline, print the results."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stdo.clitools import CONTEXT_SETTINGS, StageBars, setup_logging, stdo_command
from stdo.options import click_options, from_params
from stdo.views.sfm import recover_poses
from stdo.views.pipeline import (EvalOptions, OrderOptions, SynthOptions, UpscaleViewsOptions, evaluate_views,
                                 make_synthetic, order_scene, upscale_views)


@click.group("views", context_settings=CONTEXT_SETTINGS)
def views_group() -> None:
    """Multi-view images through video SR: SequenceMatters' orderings with stdo's models as upscalers.

    \b
    stdo-views synth SCENE                      a room of real photos on a camera path (NeRF layout, exact depth)
    stdo-views order SCENE --out ORDER          views -> sequences (ORDER/sequences.json, ORDER/frames/)
    stdo-cluster ORDER/frames RUN --lossless    then stdo-train RUN --method M (brvsr: a VSR model)
    stdo-views upscale ORDER --run RUN --method M --out SR_SCENE
    stdo-views eval SR_SCENE --reference SCENE  per-view PSNR/SSIM, multi-view consistency
    stdo-views sfm IMAGES --out PROJECT         camera poses for a folder of photos (COLMAP via pycolmap)
    """


@stdo_command("synth", group=views_group)
@click.argument("out", type=click.Path(path_type=Path))
@click_options(SynthOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def synth_command(quiet: bool, **fields) -> None:
    """Render a synthetic scene with exact geometry: a room whose faces are real photos (NeRF layout, depth maps)."""
    options = from_params(SynthOptions, fields)
    with StageBars(unit="view", disable=quiet) as bars:
        result = make_synthetic(options, progress=bars)
    width, height = options.size
    click.echo(f"{result['views']} views ({result['test_views']} test) on the {result['path']} path at "
               f"{width}x{height}: {options.out}")


@stdo_command("order", group=views_group, epilog="""\b
Defaults as SequenceMatters' release: S / feature / 100 views per sequence (Blender-synthetic);
ALS / pose / 8 views per sequence / thresholds 30,50 and a final uncut pass (Mip-NeRF 360).
Thresholds are degrees of camera angle for feature ordering, feature ranks for pose ordering.
""")
@click.argument("scene", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click_options(OrderOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def order_command(quiet: bool, verbose: int, **fields) -> None:
    """Arrange the views of SCENE (NeRF, COLMAP or an image folder) into video-like sequences, written to the
    folder OUT (sequences.json and frames/)."""
    setup_logging(verbose)
    options = from_params(OrderOptions, fields)
    with StageBars(unit="seq", disable=quiet) as bars:
        record = order_scene(options, progress=bars)
    lengths = [len(s["views"]) for s in record["sequences"]]
    click.echo(f"{record['views']} views -> {len(lengths)} sequences of {min(lengths)}..{max(lengths)} views "
               f"({record['frames']} frames) in {record['order_seconds']:.2f} s: {Path(options.out) / 'sequences.json'}")


@stdo_command("upscale", group=views_group)
@click.argument("order", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--run", type=click.Path(path_type=Path), required=True,
              help="A RUN made by stdo-cluster from ORDER/frames (its LR views, and the trained models).")
@click_options(UpscaleViewsOptions)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def upscale_command(quiet: bool, **fields) -> None:
    """Super-resolve the views ORDER arranged and write them to the folder OUT in the scene's own layout,
    intrinsics scaled."""
    options = from_params(UpscaleViewsOptions, fields)
    with StageBars(unit="seq", disable=quiet) as bars:
        report = upscale_views(options, progress=bars)
    click.echo(f"{report['views']} views x{report['scale']} by {options.method} ({report['strategy']} order) in "
               f"{report['seconds']:.1f} s: {options.out}")


@stdo_command("eval", group=views_group)
@click.argument("views", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), required=True, help="The HR scene.")
@click_options(EvalOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def eval_command(as_json: bool, **fields) -> None:
    """Per-view PSNR/SSIM against the reference, and multi-view consistency beside the reference's own."""
    report = evaluate_views(from_params(EvalOptions, fields))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['views']} views: PSNR {report['psnr']:.3f} dB, SSIM {report['ssim']:.4f}")
    c = report["consistency"]
    if c is None:
        click.echo(f"consistency: - ({report['consistency_note']})")
    else:
        click.echo(f"consistency over {c['pairs']} neighbour pairs: views {c['views']['mae']:.3f} grey levels "
                   f"({c['views']['psnr']:.2f} dB), reference {c['reference']['mae']:.3f} ({c['reference']['psnr']:.2f} dB)")


@stdo_command("sfm", group=views_group)
@click.argument("images", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
def sfm_command(images, out):
    """Recover camera poses of a folder of IMAGES (COLMAP SfM via pycolmap, CPU) into the COLMAP project OUT."""
    result = recover_poses(images, out)
    click.echo(f"{result['registered']} of {result['views']} views posed, {result['points']} points, reprojection "
               f"error {result['reprojection_error']:.2f} px: {out}")


def main() -> None:
    views_group(prog_name="stdo-views")


if __name__ == "__main__":
    main()
