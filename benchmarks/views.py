"""3D views through video SR (SequenceMatters' question, stdo's models): does the order of the views matter?

Scene: a synthetic room of real photos (stdo-views synth), 48 HR views of 192x144 on a camera path
(--path walk by default: a random walk, which no similarity orders trivially), exact depth and poses.
Orderings: random (seed 0), S-pose, S-feature, ALS-pose, ALS-feature (the release's defaults:
S: one sequence of up to 100 views; ALS: 8 views, thresholds 30,50,uncut by feature rank for pose
order, 45 degrees for feature order). The VSR, as SequenceMatters uses a pretrained one: brvsr (the
recurrent VSR) trained once on a real video (48 frames of bikes, 192x144, x4) with --steps (batch 8,
LR crops of 24), then run over every ordering's sequences (stdo-views upscale --models-from). Beside
it, overfitted to the scene (on the S-pose frames, the same budget; the order does not change their
output): per-view SISR (awdnn: one WDSR over all views) and stdo (one WDSR per chunk); and bicubic. Every SR scene is evaluated against the HR views: per-view PSNR,
and consistency (each view warped into its 2 nearest views by pose with the exact depth: mean
absolute error in grey levels over the overlap; the HR views' own figure is the floor, from
bilinear resampling). One seed: differences under 0.05 dB or 0.05 grey levels are ties.
A real case: frames of the bigbuckbunny clip's camera move under shuffled names, posed by SfM
(stdo-views sfm), each ordering scored against the true order. Writes views.md / views.json to --out.

    python benchmarks/views.py --steps 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from results_io import machine_line, results_dir, write_results
from stdo.clips import clip_path
from stdo.errors import StdoError
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop
from stdo.video import read_video
from stdo.views.order import kendall_tau
from stdo.views.sfm import recover_poses
from stdo.views.pipeline import (EvalOptions, OrderOptions, SynthOptions, UpscaleViewsOptions, evaluate_views,
                                 make_synthetic, order_scene, upscale_views)

ORDERINGS = {"random": dict(random=0), "S-pose": dict(strategy="s", similarity="pose"),
             "S-feature": dict(strategy="s", similarity="feature"), "ALS-pose": dict(strategy="als", similarity="pose"),
             "ALS-feature": dict(strategy="als", similarity="feature")}


def prepare(scene: Path, work: Path, name: str, options: dict) -> tuple[Path, Path, dict]:
    order, run = work / f"order-{name}", work / f"run-{name}"
    record = order_scene(OrderOptions(scene=scene, out=order, **options))
    cluster(ClusterOptions(source=order / "frames", run=run, scale=4, grid=(4, 3), chunks=2,
                           stream=StreamOptions(lossless=True)))
    return order, run, record


def trained(run: Path, method: str, steps: int) -> float:
    """Batches of 8 LR crops of 24 pixels (the LR views are 48x36), as benchmarks/serverside.py trains."""
    t0 = time.perf_counter()
    train(TrainOptions(run=run, method=method, config=TrainConfig(steps=steps, batch=8, crop_size=24),
                       method_options=MethodOptions()))
    return time.perf_counter() - t0


def scored(scene: Path, order: Path, run: Path, method: str, work: Path, label: str,
           models_from: Path | None = None) -> dict:
    out = work / f"sr-{label}"
    upscale_views(UpscaleViewsOptions(order=order, run=run, out=out, method=method, models_from=models_from))
    report = evaluate_views(EvalOptions(views=out, reference=scene))
    c = report["consistency"]
    return {"psnr": report["psnr"], "ssim": report["ssim"], "consistency_mae": c["views"]["mae"],
            "reference_mae": c["reference"]["mae"], "pairs": c["pairs"]}


def real_case(work: Path) -> list[dict]:
    """Frames of a real camera move (bigbuckbunny 0..92, every 4th, 640x360) under shuffled names; poses by SfM.
    How close does each ordering come to the true order? |Kendall tau| of S's chain (1 = the true order or its
    reverse) and the share of consecutive views in the sequences that are true neighbours."""
    frames, _ = read_video(clip_path("bigbuckbunny"), start=0, count=93)
    frames = frames[::4]
    perm = np.random.default_rng(0).permutation(len(frames))
    folder = work / "real"
    folder.mkdir()
    truth_of = {}
    for slot, t in enumerate(perm):
        x = torch.from_numpy(frames[t]).permute(2, 0, 1)[None].float()
        small = torch.nn.functional.interpolate(x, size=(360, 640), mode="bicubic", antialias=True, align_corners=False)
        name = f"view{slot:03d}.png"
        Image.fromarray(small[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()).save(folder / name)
        truth_of[name] = int(t)
    t0 = time.perf_counter()
    try:  # the built-in clips' camera moves are pans and zooms: little parallax for SfM to triangulate
        sfm = recover_poses(folder, work / "real-colmap")
    except StdoError as e:
        sfm = {"views": len(frames), "registered": 0, "error": str(e)}
    sfm["seconds"] = time.perf_counter() - t0
    posed = sfm["registered"] >= len(frames) // 2
    rows = []
    for name, options in ORDERINGS.items():
        if name not in ("random", "S-feature") and not posed:
            continue  # the other orderings need poses
        scene = folder if name in ("random", "S-feature") else work / "real-colmap"
        order = work / f"real-order-{name}"
        record = order_scene(OrderOptions(scene=scene, out=order, **options))
        times = [[truth_of[Path(v).name] for v in s["views"]] for s in record["sequences"]]
        pairs = [(a, b) for seq in times for a, b in zip(seq[:-1], seq[1:])]
        row = {"ordering": name, "views": record["views"], "sequences": len(times),
               "neighbour_share": float(np.mean([abs(a - b) == 1 for a, b in pairs])),
               "order_seconds": record["order_seconds"]}
        if len(times) == 1 or name.startswith("S") or name == "random":
            chain = [t for seq in times for t in seq]
            chain = list(dict.fromkeys(chain))
            row["kendall_tau"] = abs(kendall_tau(chain, sorted(chain)))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return [{"sfm": sfm}] + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="walk", choices=["walk", "orbit"])
    parser.add_argument("--views", type=int, default=48)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=results_dir("views"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-views-bench-") as tmp:
        work = Path(tmp)
        scene = work / "scene"
        make_synthetic(SynthOptions(out=scene, path=args.path, views=args.views, size=(192, 144)))
        video_run = work / "run-video"
        cluster(ClusterOptions(source=clip_path("bikes"), run=video_run, scale=4, grid=(4, 3), chunks=2, frames=48,
                               crop=Crop(192, 144, 300, 80), stream=StreamOptions(lossless=True)))
        vsr_seconds = trained(video_run, "brvsr", args.steps)
        for name, options in ORDERINGS.items():
            order, run, record = prepare(scene, work, name, options)
            row = {"ordering": name, "upscaler": "brvsr (VSR, trained on video)", "order_seconds":
                   record["order_seconds"], "sequences": len(record["sequences"]), "frames": record["frames"],
                   "train_seconds": vsr_seconds,
                   **scored(scene, order, run, "brvsr", work, f"brvsr-{name}", models_from=video_run)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if name == "S-pose":
                for method in ("bicubic", "awdnn", "stdo"):
                    seconds = trained(run, method, args.steps) if method != "bicubic" else 0.0
                    label = {"awdnn": "per-view SISR (awdnn, overfitted)", "stdo": "stdo (overfitted)"}.get(method,
                                                                                                         method)
                    row = {"ordering": "any", "upscaler": label, "train_seconds": seconds,
                           **scored(scene, order, run, method, work, method)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        real = real_case(work)
    result = {"machine": machine_line(),
              "path": args.path, "views": args.views, "steps": args.steps, "rows": rows,
              "real": real}
    write_results(args.out, "views", result, markdown(result))


def markdown(r: dict) -> str:
    lines = [f"# Views through SR: ordering x upscaler ({r['views']} views on a {r['path']}, 192x144 HR, x4, "
             f"{r['steps']} steps)", "", f"Machine: {r['machine']}. Consistency: mean absolute error (grey levels) of "
             "each view warped into its 2 nearest views, exact depth; the HR views' own figure is the floor.", "",
             "| ordering | upscaler | PSNR dB | SSIM | consistency MAE | HR floor | sequences | order s | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['ordering']} | {row['upscaler']} | {row['psnr']:.3f} | {row['ssim']:.4f} | "
                     f"{row['consistency_mae']:.3f} | {row['reference_mae']:.3f} | {row.get('sequences', '')} | "
                     f"{row.get('order_seconds', 0):.2f} | {row['train_seconds']:.0f} |")
    sfm, *real = r["real"]
    sfm = sfm["sfm"]
    lines += ["", f"Real frames (bigbuckbunny 0..92, every 4th, 640x360, names shuffled): SfM (pycolmap, CPU) posed "
              f"{sfm['registered']} of {sfm['views']} views in {sfm['seconds']:.0f} s"
              + (f" ({sfm['error']})" if "error" in sfm else "") + ".", "",
              "| ordering | views | sequences | true neighbours among consecutive views | abs Kendall tau | order s |",
              "|---|---:|---:|---:|---:|---:|"]
    for row in real:
        tau = f"{row['kendall_tau']:.3f}" if "kendall_tau" in row else "-"
        lines.append(f"| {row['ordering']} | {row['views']} | {row['sequences']} | {row['neighbour_share']:.2f} | {tau} | "
                     f"{row['order_seconds']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
