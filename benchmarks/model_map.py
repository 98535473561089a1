"""What STDO's side information costs a client: the model map (the plan is derived from it), and what holding
each patch's chunk over time (stdo-cluster --hold) saves and costs.

For each clip (x4, grid 10x5, 2 chunks, LR H.264 CRF 27, every frame) and each --hold:
- bytes: the model map as bundle version 4 ships it (by-patch-zlib, no plan), against what version 3 shipped for
  the same map (the labels deflated frame by frame, plus plan.bin: zlib of the int32 frame plan index and runs);
- the share of patch labels --hold moved, and how often a patch changes model from one frame to the next;
- quality (bikes only, --frames frames): stdo trained from the shipped prior for --steps steps (seeds 0 and 1),
  exported and played as a client plays it (ONNX Runtime int8), RGB PSNR against HR, and the change against
  --hold 1 of the same seed.

    python benchmarks/model_map.py [--holds 1,3,5,9] [--quality-holds 1,5] [--steps 400] [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from results_io import machine_line, results_dir, write_results
from stdo.clips import clip_path
from stdo.cluster.chunkmap import load_chunkmap
from stdo.cluster.partition import hold_chunks
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.export.pipeline import ExportOptions, export
from stdo.grid import Grid
from stdo.play.pipeline import PlayOptions, play
from stdo.plan import choose_shapes, make_plan
from stdo.bundle import encode_model_map
from stdo.rundir import read_run_info
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.pipeline import TrainOptions, train

CLIPS = ("bikes", "bigbuckbunny")
MARGIN = 4  # what --plan-margin auto measures for trained wdsr_a_mobile models
BASE = ClusterOptions(source=Path(), run=Path(), scale=4, grid=(10, 5), chunks=2, stream=StreamOptions(crf=27))


def version3_bytes(chunks: np.ndarray, grid: Grid) -> int:
    """modelmap.bin and plan.bin as bundle version 3 wrote them for this map."""
    plan = make_plan(chunks, grid, MARGIN, choose_shapes(chunks, grid, MARGIN, 3))
    plan_file = (np.ascontiguousarray(plan.frame_plan, "<i4").tobytes()
                 + np.ascontiguousarray(plan.runs.T, "<i4").tobytes())
    return len(zlib.compress(chunks.astype(np.uint8).tobytes(), 9)) + len(zlib.compress(plan_file, 9))


def map_costs(clip: str, holds: list[int], work: Path) -> list[dict]:
    """The clip clustered once; each --hold applied to its chunks as stdo-cluster applies it."""
    run = work / clip
    cluster(replace(BASE, source=clip_path(clip), run=run))
    unheld = load_chunkmap(run / "clusters.npz").chunks
    info = read_run_info(run)
    w, h = info["lr_size"]
    grid = Grid(h, w, BASE.grid[1], BASE.grid[0])
    rows = []
    for hold in holds:
        chunks = hold_chunks(unheld, hold)
        rows.append({"clip": clip, "hold": hold, "frames": len(chunks), "map_bytes": len(encode_model_map(chunks)),
                     "version3_bytes": version3_bytes(chunks, grid), "moved": float((chunks != unheld).mean()),
                     "changes_per_patch_frame": float((chunks[1:] != chunks[:-1]).mean()),
                     "stream_bytes": int(info["lr"]["stream"]["bytes"])})
    return rows


def quality(hold: int, seed: int, steps: int, frames: int, work: Path) -> dict:
    run = work / f"q_h{hold}_s{seed}"
    cluster(replace(BASE, source=clip_path("bikes"), run=run, hold=hold, frames=frames))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=steps, seed=seed), evaluate=False))
    export(ExportOptions(run=run, format=("onnx",), quantize=("int8",), verify_frames=2))
    played = play(PlayOptions(bundle=run / "bundle", backend="onnxruntime", precision="int8", hr=run / "frames/hr.npy"))
    manifest = json.loads((run / "bundle/manifest.json").read_text())
    updates = sum(f["update"]["bytes"] for m in manifest["models"] for f in m["files"]
                  if f.get("update") and (f["format"], f["precision"]) == ("onnx", "int8"))
    return {"hold": hold, "seed": seed, "psnr": played["psnr"]["model"], "map_bytes": manifest["model_map"]["bytes"],
            "update_bytes": updates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holds", default="1,3,5,9")
    parser.add_argument("--quality-holds", default="1,5", help="the --hold values trained and played (the first is "
                        "the reference)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--frames", type=int, default=60, help="bikes frames trained for the quality column")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", type=Path, default=results_dir("model_map"))
    args = parser.parse_args()
    holds = [int(v) for v in args.holds.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    quality_holds = [int(v) for v in args.quality_holds.split(",")]
    with tempfile.TemporaryDirectory(prefix="stdo-map-") as tmp:
        work = Path(tmp)
        costs = [row for clip in CLIPS for row in map_costs(clip, holds, work)]
        for row in costs:
            print(json.dumps(row), flush=True)
        scores = []
        for hold in quality_holds:
            for seed in seeds:
                scores.append(quality(hold, seed, args.steps, args.frames, work))
                print(json.dumps(scores[-1]), flush=True)
    lines = ["# The model map: what a client downloads beside the models", "",
             f"Machine: {machine_line()}. x4, grid 10x5, 2 chunks, LR H.264 CRF 27. "
             "Generated by benchmarks/model_map.py.", "",
             "| clip | frames | --hold | map (v4, plan derived) | map + plan (v3) | labels moved | model changes "
             "per patch-frame | LR stream |", "|---|---|---|---|---|---|---|---|"]
    for r in costs:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['hold']} | {r['map_bytes']:,} B | {r['version3_bytes']:,} B | "
                     f"{100 * r['moved']:.1f}% | {r['changes_per_patch_frame']:.3f} | {r['stream_bytes']:,} B |")
    base = {s["seed"]: s["psnr"] for s in scores if s["hold"] == quality_holds[0]}
    lines += ["", f"Quality: bikes, first {args.frames} frames, stdo from the shipped prior, {args.steps} steps, "
              "played by ONNX Runtime int8 (RGB PSNR against HR; change against the same seed at "
              f"--hold {quality_holds[0]}).", "",
              "| --hold | seed | RGB PSNR | change | map | updates |", "|---|---|---|---|---|---|"]
    for s in scores:
        lines.append(f"| {s['hold']} | {s['seed']} | {s['psnr']:.3f} | {s['psnr'] - base[s['seed']]:+.3f} | "
                     f"{s['map_bytes']:,} B | {s['update_bytes']:,} B |")
    write_results(args.out, "model_map", {"costs": costs, "quality": scores}, "\n".join(lines))


if __name__ == "__main__":
    main()
