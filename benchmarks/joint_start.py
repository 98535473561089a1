"""stdo from a joint start: how much of the budget should one joint model get before the chunk experts?

At equal total optimizer steps per method (the cost protocol): stdo with --joint-start 0 (plain),
0.5, 0.75 (the default), 0.9 (jstdo's run for that share, then one copy per chunk runs the rest of
its learning-rate schedule on its chunk, the steps split evenly), beside jstdo and awdnn (one model,
all steps). Every run keeps its best evaluated state (the default). Two seeds each; a difference
smaller than the larger seed spread of the two is called a tie. Writes joint_start.md /
joint_start.json to --out.

    python benchmarks/joint_start.py --clips bikes,bigbuckbunny --steps 800 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train

from quality import CROPS, GRIDS  # the clips' crops and STDO's grids, as every quality benchmark uses
from results_io import machine_line, results_dir, write_results

VARIANTS = [("stdo", 0.0), ("stdo", 0.5), ("stdo", 0.75), ("stdo", 0.9), ("jstdo", 0.0), ("awdnn", 0.0)]


def label(method: str, share: float) -> str:
    return f"stdo joint {share:.2f}" if method == "stdo" else method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="bikes,bigbuckbunny")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--steps", type=int, default=800, help="total optimizer steps of every method")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--model", default="wdsr_a_mobile")
    parser.add_argument("--out", type=Path, default=results_dir("joint_start"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-joint-") as tmp:
        for clip in args.clips.split(","):
            run = Path(tmp) / clip
            cluster(ClusterOptions(source=clip_path(clip), run=run, scale=args.scale, grid=GRIDS[args.scale], chunks=2,
                                   frames=args.frames, crop=CROPS[clip], margin=8, stream=StreamOptions(lossless=True)))
            for seed in map(int, args.seeds.split(",")):
                for method, share in VARIANTS:
                    t0 = time.perf_counter()
                    report = train(TrainOptions(
                        run=run, method=method, restart=True,
                        config=TrainConfig(steps=args.steps, checkpoint_every=args.steps, seed=seed),
                        method_options=MethodOptions(model=args.model, joint_start=share)))
                    rows.append({"clip": clip, "seed": seed, "variant": label(method, share),
                                 "psnr": report["psnr_video"], "bicubic": report["bicubic"]["psnr_video"],
                                 "gain": report["psnr_video"] - report["bicubic"]["psnr_video"],
                                 "kept": {j["name"]: j["kept_step"] for j in report["jobs"]},
                                 "params": report["params"], "seconds": time.perf_counter() - t0})
                    print(json.dumps(rows[-1]), flush=True)
    write_results(args.out, "joint_start", rows, markdown(rows, args))


def markdown(rows: list[dict], args) -> str:
    variants = [label(m, s) for m, s in VARIANTS]
    clips = list(dict.fromkeys(r["clip"] for r in rows))
    gains = {(r["clip"], r["variant"], r["seed"]): r["gain"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# stdo from a joint start: x{args.scale}, {args.frames} frames, {args.steps} steps per method, "
             f"{args.model}, seeds {seeds}", "",
             f"Machine: {machine_line()}. RGB PSNR gain over "
             "bicubic of the whole frames (dB), mean over seeds, then the seed spread (max - min).", "",
             "| variant | " + " | ".join(clips) + " | mean | params |", "|---|" + "---:|" * (len(clips) + 2)]
    means = {}
    for v in variants:
        cells, per_clip = [], []
        for c in clips:
            g = [gains[(c, v, s)] for s in seeds if (c, v, s) in gains]
            per_clip.append(np.mean(g))
            cells.append(f"{np.mean(g):+.3f} ({max(g) - min(g):.3f})")
        means[v] = float(np.mean(per_clip))
        params = next(r["params"] for r in rows if r["variant"] == v)
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {means[v]:+.3f} | {params:,} |")
    spread = max(max(gains[(c, v, s)] for s in seeds) - min(gains[(c, v, s)] for s in seeds)
                 for c in clips for v in variants)
    best = max((v for v in variants if v.startswith("stdo")), key=means.get)
    verdict = "a tie" if abs(means[best] - means["jstdo"]) <= spread else (
        "ahead" if means[best] > means["jstdo"] else "behind")
    lines += ["", f"Largest seed spread: {spread:.3f} dB. Best stdo variant: {best} ({means[best]:+.3f} dB mean) vs "
              f"jstdo {means['jstdo']:+.3f}: {verdict} (within the spread = a tie)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
