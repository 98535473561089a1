"""The paper's regime: stdo, jstdo and awdnn trained to convergence on one long clip (a GPU job).

STDO's recipe (DESIGN.md): Adam, L1, cosine schedule, lr 1e-3, batch 16, 50 epochs over the data.
An epoch here is one pass over the patches a model serves, so every method gets the same number of
training samples: the k per-chunk models of stdo together see each patch of the clip 50 times,
as does one joint model (jstdo, awdnn). stdo runs as shipped (its default joint start) and plain
(--joint-start 0). Every run keeps its best evaluated state. One clip, x4, 250 frames by default.

Results are written after each method (results.json, results.md in --out), so a run stopped by a
time limit keeps what it finished. The code runs anywhere; at the defaults it wants a GPU (about
40,000 optimizer steps per method). A CPU check of the script itself:

    python benchmarks/converge.py --frames 4 --epochs 2 --device cpu --out /tmp/converge

On a lent GPU (the `device` tool):

    python benchmarks/converge.py --device cuda --out $OUT/converge
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.cluster.chunkmap import load_chunkmap
from stdo.rundir import CLUSTERS
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train

from quality import CROPS, GRIDS  # the clips' crops and STDO's grids, as every quality benchmark uses
from results_io import machine_line, results_dir, write_results

VARIANTS = {  # label: (method, method options beside the model)
    "stdo": ("stdo", {}),  # the default: a joint start
    "stdo-plain": ("stdo", {"joint_start": 0.0}),
    "jstdo": ("jstdo", {}),
    "awdnn": ("awdnn", {}),
}


def steps_for(epochs: float, patches: int, batch: int) -> int:
    """Optimizer steps that show every patch `epochs` times in batches of `batch`."""
    return max(1, math.ceil(epochs * patches / batch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="bikes", choices=sorted(CROPS))
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--scale", type=int, default=4, choices=sorted(GRIDS))
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--epochs", type=float, default=50.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--model", default="wdsr_a_mobile")
    parser.add_argument("--methods", default=",".join(VARIANTS), help="of " + ", ".join(VARIANTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=results_dir("converge"))
    args = parser.parse_args()
    unknown = set(args.methods.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"--methods: unknown {', '.join(sorted(unknown))}; use {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="stdo-converge-") as tmp:
        run = Path(tmp) / args.clip
        t0 = time.perf_counter()
        cluster(ClusterOptions(source=clip_path(args.clip), run=run, scale=args.scale, grid=GRIDS[args.scale],
                               chunks=args.chunks, frames=args.frames, crop=CROPS[args.clip], margin=8,
                               stream=StreamOptions(lossless=True)))
        patches = load_chunkmap(run / CLUSTERS).chunks.size
        print(json.dumps({"clustered": args.clip, "frames": args.frames, "patches": patches,
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        steps = steps_for(args.epochs, patches, args.batch)
        for label in args.methods.split(","):
            method, extra = VARIANTS[label]
            t0 = time.perf_counter()
            report = train(TrainOptions(
                run=run, method=method, restart=True,
                config=TrainConfig(steps=steps, batch=args.batch, learning_rate=args.lr, checkpoint_every=max(100, steps // 10),
                                   seed=args.seed, device=args.device, amp=args.amp),
                method_options=MethodOptions(model=args.model, **extra)))
            rows.append({"variant": label, "method": method, **extra, "steps": steps,
                         "psnr": report["psnr_video"], "bicubic": report["bicubic"]["psnr_video"],
                         "gain": report["psnr_video"] - report["bicubic"]["psnr_video"],
                         "kept": {j["name"]: j["kept_step"] for j in report["jobs"]},
                         "params": report["params"], "seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
            write_results(args.out, "converge", rows, markdown(rows, args, patches))  # after each variant


def markdown(rows: list[dict], args, patches: int) -> str:
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{os.cpu_count()}-core CPU"
    lines = [f"# To convergence: {args.clip} x{args.scale}, {args.frames} frames ({patches} patches), {args.epochs:g} "
             f"epochs, batch {args.batch}, lr {args.lr:g}, {args.model}, seed {args.seed}", "",
             f"Machine: {machine_line(device, f'amp {args.amp}')}. RGB PSNR of the "
             "whole frames against HR; gain over bicubic.", "",
             "| variant | steps | PSNR | gain | params | minutes | kept step per job |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        kept = ", ".join(f"{k} {v}" for k, v in r["kept"].items())
        lines.append(f"| {r['variant']} | {r['steps']:,} | {r['psnr']:.3f} | {r['gain']:+.3f} | {r['params']:,} | "
                     f"{r['seconds'] / 60:.1f} | {kept} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
