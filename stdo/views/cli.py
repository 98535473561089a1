"""stdo-views: parse options, call stdo.views.pipeline, print the results."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stdo.clitools import CONTEXT_SETTINGS, StageBars, setup_logging, stdo_command
from stdo.errors import StdoError
from stdo.grid import parse_grid
from stdo.upscale.pipeline import UPSCALE_BACKENDS
from stdo.views.order import SIMILARITIES, STRATEGIES
from stdo.views.sfm import recover_poses
from stdo.views.pipeline import (EvalOptions, OrderOptions, SynthOptions, UpscaleViewsOptions, evaluate_views,
                                 make_synthetic, order_scene, upscale_views)


def _thresholds(ctx, param, value):
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise StdoError(f"--thresholds {value!r} is not a list of numbers: write it like 30,50,100") from None


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
@click.option("--path", "camera_path", type=click.Choice(["orbit", "walk"]), default="orbit", show_default=True,
              help="orbit: a circle around the room's centre, looking at it; walk: a smooth random walk.")
@click.option("--views", type=int, default=48, show_default=True, help="Training views.")
@click.option("--test-views", type=int, default=0, show_default=True, help="Test views on the same path.")
@click.option("--size", default="256x192", show_default=True, help="HR view size, WxH.")
@click.option("--fov", type=float, default=70.0, show_default=True, help="Horizontal field of view, degrees.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random walk.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if stdo-views wrote it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def synth_command(out, camera_path, views, test_views, size, fov, seed, overwrite, quiet):
    """Render a synthetic scene with exact geometry: a room whose faces are real photos (NeRF layout, depth maps)."""
    width, height = parse_grid(size)
    with StageBars(unit="view", disable=quiet) as bars:
        result = make_synthetic(SynthOptions(out=out, path=camera_path, views=views, size=(width, height),
                                             fov_degrees=fov, seed=seed, test_views=test_views, overwrite=overwrite),
                                progress=bars)
    click.echo(f"{result['views']} views ({result['test_views']} test) on the {result['path']} path at "
               f"{width}x{height}: {out}")


@stdo_command("order", group=views_group, epilog="""\b
Defaults as SequenceMatters' release: S / feature / 100 views per sequence (Blender-synthetic);
ALS / pose / 8 views per sequence / thresholds 30,50 and a final uncut pass (Mip-NeRF 360).
Thresholds are degrees of camera angle for feature ordering, feature ranks for pose ordering.
""")
@click.argument("scene", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--strategy", type=click.Choice(STRATEGIES), default="s", show_default=True,
              help="s: one greedy chain cut into sequences; als: adaptive-length chains from every view.")
@click.option("--similarity", type=click.Choice(SIMILARITIES), default="feature", show_default=True,
              help="What orders the chain: camera-centre angle (pose) or ORB match distance (feature).")
@click.option("--length", type=int, help="Views per sequence [default: 100 for s, 8 for als].")
@click.option("--thresholds", callback=_thresholds, help="ALS thresholds, strictest first, comma-separated.")
@click.option("--random", "random_seed", type=int, metavar="SEED", help="A random order instead (the control).")
@click.option("--split", default="train", show_default=True, help="NeRF scenes: the transforms_<split>.json to read.")
@click.option("--write-mp4", "video", is_flag=True, help="Also write each sequence as an .mp4, for viewing.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if stdo-views wrote it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", count=True, help="More logging.")
def order_command(scene, out, strategy, similarity, length, thresholds, random_seed, split, video, overwrite, quiet,
                  verbose):
    """Arrange the views of SCENE (NeRF, COLMAP or an image folder) into video-like sequences, written to the
    folder OUT (sequences.json and frames/)."""
    setup_logging(verbose)
    with StageBars(unit="seq", disable=quiet) as bars:
        record = order_scene(OrderOptions(scene=scene, out=out, strategy=strategy, similarity=similarity,
                                          length=length, thresholds=thresholds, split=split,
                                          random_seed=random_seed, video=video, overwrite=overwrite), progress=bars)
    lengths = [len(s["views"]) for s in record["sequences"]]
    click.echo(f"{record['views']} views -> {len(lengths)} sequences of {min(lengths)}..{max(lengths)} views "
               f"({record['frames']} frames) in {record['order_seconds']:.2f} s: {Path(out) / 'sequences.json'}")


@stdo_command("upscale", group=views_group)
@click.argument("order", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--run", type=click.Path(path_type=Path), required=True,
              help="A RUN made by stdo-cluster from ORDER/frames (its LR views, and the trained models).")
@click.option("--method", default="bicubic", show_default=True,
              help="bicubic, or a method trained on the RUN (stdo, awdnn, jstdo, brvsr, ...).")
@click.option("--models-from", type=click.Path(path_type=Path),
              help="Use METHOD as trained on this other RUN (one-model methods: a VSR trained on videos, as "
                   "SequenceMatters uses a pretrained one) [default: the --run's own].")
@click.option("--backend", type=click.Choice(UPSCALE_BACKENDS), default="torch", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUT if stdo-views wrote it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def upscale_command(order, run, method, models_from, out, backend, overwrite, quiet):
    """Super-resolve the views ORDER arranged and write them to the folder OUT in the scene's own layout,
    intrinsics scaled."""
    with StageBars(unit="seq", disable=quiet) as bars:
        report = upscale_views(UpscaleViewsOptions(order=order, run=run, out=out, method=method, backend=backend,
                                                   models_from=models_from, overwrite=overwrite), progress=bars)
    click.echo(f"{report['views']} views x{report['scale']} by {method} ({report['strategy']} order) in "
               f"{report['seconds']:.1f} s: {out}")


@stdo_command("eval", group=views_group)
@click.argument("views", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), required=True, help="The HR scene.")
@click.option("--order", type=click.Path(path_type=Path),
              help="Neighbours from these sequences [default: each view's nearest by pose].")
@click.option("--neighbours", type=int, default=2, show_default=True, help="Nearest views per view.")
@click.option("--split", default="train", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def eval_command(views, reference, order, neighbours, split, as_json):
    """Per-view PSNR/SSIM against the reference, and multi-view consistency beside the reference's own."""
    report = evaluate_views(EvalOptions(views=views, reference=reference, order=order, neighbours=neighbours,
                                        split=split))
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
