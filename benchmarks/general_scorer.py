"""Chunking by a general SR model made here (stdo-general) against chunking by bicubic PSNR: which makes better stdo?

STDO scores patches with a general (pretrained) SR model; none is reachable here, so stdo-general trains one
on clips the test clip is not among (bigbuckbunny and carphone, 60 frames each, --general-steps, the
model --general-model). Then the test clip (bikes, 30 frames, 640x272, x4, grid 10x5, 2 chunks,
lossless LR: the paper's protocol) is clustered twice, --scorer bicubic and --scorer general, and stdo
trained on each (--steps in all, 2 seeds), plain (--joint-start 0, where the chunks shape all of the
training) and as shipped (its joint start, where they shape the experts' share). Reported: the gain over bicubic of each, the agreement of
the two chunk maps, and the score correlation. A difference inside the seed spread is a tie.
Writes general_scorer.md / .json to --out.

    python benchmarks/general_scorer.py --general-steps 2000 --steps 800
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from results_io import machine_line, results_dir, write_results
from stdo.clips import clip_path
from stdo.cluster.chunkmap import load_chunkmap
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.stream import StreamOptions
from stdo.train.general import GeneralOptions, train_general
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop

VARIANTS = {"stdo plain": {"joint_start": 0.0}, "stdo (default)": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--general-steps", type=int, default=2000)
    parser.add_argument("--general-model", default="wdsr_a_mobile")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", type=Path, default=results_dir("general_scorer"))
    args = parser.parse_args()
    rows, maps = [], {}
    with tempfile.TemporaryDirectory(prefix="stdo-general-") as tmp:
        general = Path(tmp) / "general.pt"
        t0 = time.perf_counter()
        made = train_general(GeneralOptions(sources=[clip_path("bigbuckbunny"), clip_path("carphone")], out=general,
                                            model=args.general_model, config=TrainConfig(steps=args.general_steps)))
        general_seconds = time.perf_counter() - t0
        for scorer in ("bicubic", "general"):
            run = Path(tmp) / scorer
            cluster(ClusterOptions(source=clip_path("bikes"), run=run, scale=4, grid=(10, 5), chunks=2, frames=30,
                                   crop=Crop(640, 272), margin=8, scorer=scorer,
                                   checkpoint=general if scorer == "general" else None,
                                   stream=StreamOptions(lossless=True)))
            maps[scorer] = load_chunkmap(run / "clusters.npz")
            for (variant, extra), seed in itertools.product(VARIANTS.items(), map(int, args.seeds.split(","))):
                report = train(TrainOptions(run=run, method="stdo", restart=True,
                                            config=TrainConfig(steps=args.steps, checkpoint_every=args.steps, seed=seed),
                                            method_options=MethodOptions(**extra)))
                rows.append({"scorer": scorer, "variant": variant, "seed": seed, "psnr": report["psnr_video"],
                             "bicubic": report["bicubic"]["psnr_video"],
                             "gain": report["psnr_video"] - report["bicubic"]["psnr_video"],
                             "chunks": [c["psnr"] for c in report["chunks"]]})
                print(json.dumps(rows[-1]), flush=True)
    agreement = float(np.mean(maps["bicubic"].chunks == maps["general"].chunks))
    correlation = float(np.corrcoef(maps["bicubic"].scores.ravel(), maps["general"].scores.ravel())[0, 1])
    result = {"machine": machine_line(),
              "general": {"model": args.general_model, "steps": args.general_steps, "seconds": general_seconds,
                          "report": {k: made.get(k) for k in ("kept_step", "eval_psnr", "eval_psnr_start")}},
              "steps": args.steps, "rows": rows, "chunk_agreement": agreement, "score_correlation": correlation}
    write_results(args.out, "general_scorer", result, markdown(result))


def markdown(r: dict) -> str:
    lines = [f"# stdo on bikes (x4, 30 frames, lossless LR, {r['steps']} steps) chunked by bicubic PSNR or by a general "
             f"{r['general']['model']} trained here ({r['general']['steps']} steps on bigbuckbunny + carphone, "
             f"{r['general']['seconds']:.0f} s)", "", f"Machine: {r['machine']}.", "",
             "| stdo | scorer | gain over bicubic per seed (dB) | mean | spread |", "|---|---|---|---:|---:|"]
    verdicts = []
    for variant in dict.fromkeys(row["variant"] for row in r["rows"]):
        gains = {s: [row["gain"] for row in r["rows"] if (row["variant"], row["scorer"]) == (variant, s)]
                 for s in ("bicubic", "general")}
        for scorer, g in gains.items():
            lines.append(f"| {variant} | {scorer} | " + ", ".join(f"{x:+.3f}" for x in g) + f" | {np.mean(g):+.3f} | "
                         f"{max(g) - min(g):.3f} |")
        spread = max(max(g) - min(g) for g in gains.values())
        diff = float(np.mean(gains["general"]) - np.mean(gains["bicubic"]))
        verdict = "a tie (inside the seed spread)" if abs(diff) <= spread else ("general ahead" if diff > 0 else
                                                                              "bicubic ahead")
        verdicts.append(f"{variant}: general - bicubic {diff:+.3f} dB, {verdict}.")
    lines += ["", *verdicts, "", f"The two chunk maps agree on {100 * r['chunk_agreement']:.1f}% of patches; score "
              f"correlation {r['score_correlation']:.3f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
