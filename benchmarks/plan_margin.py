"""The inference plan's margin: PSNR changed against pixels run.

The plan's margin is the LR context each window gets around the pixels it keeps. At the models'
receptive radius every kept pixel equals the model run on the whole frame; below it, pixels near
a window's edge see the frame cut off, and the plan runs fewer pixels. For each margin M:

- quality: bikes and bigbuckbunny (640x272 crop, 30 frames, grid 10x5 at x4 and 20x10 at x2, 2
  chunks), stdo trained once per clip and scale; the trained fp32 models executing a plan of
  margin M over every frame: RGB PSNR against HR, its change against the exact plan (margin =
  receptive radius), and the PSNR of the frames against the exact plan's frames;
- plan cost at 1080p output: bigbuckbunny upscaled to 1080p, clustered at x4 (grid 10x5) and x2
  (grid 20x10): model runs per frame and LR pixels run per frame pixel, 3 plan shapes.

    python benchmarks/plan_margin.py [--margins 10,8,6,4,2,0] [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from cluster_speed import make_1080p_video

from results_io import machine_line, results_dir, write_results
from stdo.clips import clip_path  # noqa: E402
from stdo.cluster.chunkmap import load_chunkmap  # noqa: E402
from stdo.cluster.pipeline import ClusterOptions, cluster  # noqa: E402
from stdo.infer import upscale_planned  # noqa: E402
from stdo.metrics import psnr  # noqa: E402
from stdo.models import fold_weight_norm  # noqa: E402
from stdo.plan import choose_shapes, make_plan  # noqa: E402
from stdo.rundir import MODEL_MAP, grid_of, load_frames, method_dir, read_run_info  # noqa: E402
from stdo.train.loop import TrainConfig  # noqa: E402
from stdo.train.methods import load_models  # noqa: E402
from stdo.train.pipeline import TrainOptions, train  # noqa: E402
from stdo.clip import Crop  # noqa: E402
from stdo.resample import as_nchw  # noqa: E402

GRIDS = {4: (10, 5), 2: (20, 10)}


@torch.no_grad()
def planned_frames(run: Path, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(SR frames of the trained stdo models executing a plan of `margin`, HR frames), float 0..255."""
    info = read_run_info(run)
    grid, scale = grid_of(info), int(info["scale"])
    hr, lr = load_frames(run)
    model_map = np.load(method_dir(run, "stdo") / MODEL_MAP)["model_map"]
    models = [fold_weight_norm(m).eval() for m in load_models(method_dir(run, "stdo"), int(model_map.max()) + 1)]
    plan = make_plan(model_map, grid, margin, choose_shapes(model_map, grid, margin, 3))
    out = []
    for t in range(0, len(lr), 4):
        x = as_nchw(lr[t : t + 4]).float().div_(255)
        sr = upscale_planned(x, plan.frame_runs(t, len(x)), plan.shapes, scale, models, first_frame=t)
        out.append(sr.mul_(255).round_())
    return torch.cat(out), as_nchw(hr).float()


def quality(clip: str, scale: int, margins: list[int], steps: int, work: Path) -> list[dict]:
    run = work / f"{clip}_x{scale}"
    cluster(ClusterOptions(source=clip_path(clip), run=run, scale=scale, grid=GRIDS[scale], chunks=2, frames=30,
                           crop=Crop(640, 272)))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=steps), evaluate=False))
    radius = max(m.receptive_radius for m in load_models(method_dir(run, "stdo"), 2))
    exact, hr = planned_frames(run, radius)
    exact_psnr = float(psnr(exact, hr, shave=scale).mean())
    rows = []
    for m in margins:
        sr = exact if m == radius else planned_frames(run, m)[0]
        value = float(psnr(sr, hr, shave=scale).mean())
        rows.append({"margin": m, "receptive_radius": radius, "psnr": value, "change": value - exact_psnr,
                     "vs_exact": float(psnr(sr, exact).mean()), "max_abs_vs_exact": float((sr - exact).abs().max())})
    return rows


def plan_cost(video: Path, scale: int, margins: list[int], work: Path) -> dict:
    run = work / f"bunny_1080p_x{scale}"
    cluster(ClusterOptions(source=video, run=run, scale=scale, grid=GRIDS[scale], chunks=2))
    chunks = load_chunkmap(run / "clusters.npz").chunks
    grid = grid_of(read_run_info(run))
    return {m: make_plan(chunks, grid, m, choose_shapes(chunks, grid, m, 3)).stats(grid) for m in margins}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margins", default="10,8,6,4,2,0")
    parser.add_argument("--clips", default="bikes,bigbuckbunny")
    parser.add_argument("--scales", default="4,2")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--frames", type=int, default=8, help="1080p frames for the plan cost")
    parser.add_argument("--out", type=Path, default=results_dir("plan_margin"))
    args = parser.parse_args()
    margins = [int(m) for m in args.margins.split(",")]
    scales = [int(s) for s in args.scales.split(",")]
    result: dict = {"margins": margins, "steps": args.steps, "quality": {}, "cost": {}}
    with tempfile.TemporaryDirectory(prefix="stdo-margin-") as tmp:
        work = Path(tmp)
        video = work / "bunny_1080p.mp4"
        make_1080p_video(video, args.frames)
        for scale in scales:
            result["cost"][f"x{scale}"] = plan_cost(video, scale, margins, work)
            for clip in args.clips.split(","):
                result["quality"][f"{clip} x{scale}"] = quality(clip, scale, margins, args.steps, work)
                print(json.dumps(result["quality"][f"{clip} x{scale}"]), flush=True)
    lines = ["# The plan's margin: PSNR changed against pixels run", "",
             f"Machine: {machine_line()}. Quality: 640x272 crops, 30 frames, 2 chunks, "
             f"stdo ({args.steps} steps, wdsr_a_mobile), fp32 torch executing the plan over every frame. Cost: "
             f"bigbuckbunny at 1080p output, {args.frames} frames, 3 plan shapes. Generated by "
             "benchmarks/plan_margin.py.", "",
             "change = RGB PSNR against HR minus the exact plan's (margin = receptive radius); vs exact = PSNR of the "
             "frames against the exact plan's frames.", ""]
    for scale in scales:
        keys = [k for k in result["quality"] if k.endswith(f"x{scale}")]
        head = "| margin | runs/frame | pixels run / frame | " + " | ".join(f"{k}: change (vs exact)" for k in keys) + " |"
        lines += [f"## x{scale}", "", head, "|---" * (3 + len(keys)) + "|"]
        for i, m in enumerate(margins):
            cost = result["cost"][f"x{scale}"][m]
            cells = [f"{result['quality'][k][i]['change']:+.4f} dB ({result['quality'][k][i]['vs_exact']:.1f})"
                     for k in keys]
            lines.append(f"| {m} | {cost['runs_per_frame']:.1f} | {cost['pixels_run_per_needed']:.2f}x | "
                         + " | ".join(cells) + " |")
        lines.append("")
    write_results(args.out, "plan_margin", result, "\n".join(lines))


if __name__ == "__main__":
    main()
