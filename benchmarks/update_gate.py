"""Per-model rate decisions: per-chunk updates shipped whole against the same updates shipped only where they pay.

One clip at several LR CRFs (H.264): the carried prior alone played at each CRF gives the stream's own slope (dB per
byte between neighbouring CRFs, as stdo-deliver measures it); stdo (a model per chunk) trained from the prior is then
exported twice, every update shipped (`ship_all`) and each model's update shipped only where it adds at least the
slope's dB for its bytes (`db_per_kb`), the rest served by the prior. Every bundle is played by stdo-play's player
(onnxruntime int8) against the HR frames; bytes are what a client downloads (LR stream + updates + model map).
The prior never saw the clip.

    python benchmarks/update_gate.py --clip bikes --crf 23,27,31 --chunks 4 --steps 800
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from results_io import machine_line, results_dir, write_results  # benchmarks/, on the path when run as a script
from stdo.clip import Crop
from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.deliver.pipeline import stream_slope
from stdo.export.pipeline import ExportOptions, export
from stdo.play.player import Player, lr_stream
from stdo.ratequality import quality
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.pipeline import TrainOptions, train


def played(bundle: Path, hr: np.ndarray, scale: int) -> dict:
    player = Player(bundle, backend="onnxruntime", precision="int8")
    rgb, _, _ = quality((sr for _, _, sr in player.play(lr_stream(player))), hr, scale)
    sizes = player.delivered_bytes
    return {"psnr": rgb, "total": sizes["total"], "video": sizes["video"], "models": sizes["models"],
            "model_map": sizes["model_map"], "num_models": len(player.bundle.models)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--crf", default="23,27,31", help="LR stream CRFs (H.264)")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--out", type=Path, default=results_dir("update_gate"))
    args = parser.parse_args()
    crfs = sorted(int(c) for c in args.crf.split(","))
    export_options = ExportOptions(run=Path(), format=("onnx",), quantize=("int8",), verify_frames=30)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-gate-") as tmp:
        runs, priors = {}, []
        for crf in crfs:  # the prior alone at every CRF first: the slopes
            run = runs[crf] = Path(tmp) / f"crf{crf}"
            cluster(ClusterOptions(source=clip_path(args.clip), run=run, scale=args.scale, chunks=args.chunks,
                                   frames=args.frames, crop=Crop(640, 272) if args.clip == "bikes" else None,
                                   stream=StreamOptions(crf=crf)))
            train(TrainOptions(run=run, method="prior", evaluate=False))
            export(replace(export_options, run=run, method="prior", out=run / "bundle-prior"))
            alone = played(run / "bundle-prior", np.load(run / "frames/hr.npy"), args.scale)
            priors.append({"crf": crf, "scale": args.scale, "video": alone["video"], "prior_psnr": alone["psnr"],
                           "prior_total": alone["total"]})
        for crf, prior in zip(crfs, priors):
            run, hr = runs[crf], np.load(runs[crf] / "frames/hr.npy")
            slope = stream_slope(priors, crf, args.scale) or 0.0
            train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=args.steps), evaluate=False))
            export(replace(export_options, run=run, out=run / "bundle-all", ship_all=True))
            whole = played(run / "bundle-all", hr, args.scale)
            report = export(replace(export_options, run=run, out=run / "bundle-gated", db_per_kb=slope * 1024))
            gated = played(run / "bundle-gated", hr, args.scale)
            rows.append({"crf": crf, "db_per_kb": slope * 1024, "prior_psnr": prior["prior_psnr"],
                         "prior_total": prior["prior_total"], "all": whole, "gated": gated,
                         "decisions": report.get("updates", {}).get("models", [])})
            print(f"CRF {crf}: prior {prior['prior_psnr']:.3f} dB {prior['prior_total']:,} B; every update "
                  f"{whole['psnr']:.3f} dB {whole['total']:,} B; gated {gated['psnr']:.3f} dB {gated['total']:,} B",
                  flush=True)
    lines = ["# Per-model rate decisions: every update shipped, or only those that pay", "",
             f"Machine: {machine_line()}. "
             f"{args.clip}, {args.frames} frames, x{args.scale}, LR H.264, stdo with {args.chunks} chunks trained from "
             f"the prior for {args.steps} steps; ONNX int8 played by stdo-play's player (onnxruntime). Generated by "
             "`python benchmarks/update_gate.py " + f"--clip {args.clip} --crf {args.crf} --chunks {args.chunks} "
             f"--steps {args.steps}`.", "",
             "| CRF | price (dB/KiB) | prior alone: bytes | PSNR | every update: bytes | PSNR | over the prior | "
             "only those that pay: bytes | PSNR | over the prior | updates shipped |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, g = r["all"], r["gated"]
        shipped = sum(d["pays"] for d in r["decisions"])
        lines.append(f"| {r['crf']} | {r['db_per_kb']:.4f} | {r['prior_total']:,} | {r['prior_psnr']:.3f} | "
                     f"{a['total']:,} | {a['psnr']:.3f} | {a['psnr'] - r['prior_psnr']:+.3f} | {g['total']:,} | "
                     f"{g['psnr']:.3f} | {g['psnr'] - r['prior_psnr']:+.3f} | {shipped} of {len(r['decisions'])} |")
    lines += ["", "Each model's decision (gain over the prior on its patches, torch fp32 on the verification frames):",
              ""]
    for r in rows:
        lines.append(f"- CRF {r['crf']}: " + "; ".join(
            f"model {d['model']} {d['gain_db']:+.3f} dB for {d['update_bytes']:,} B ({'ships' if d['pays'] else 'prior'})"
            for d in r["decisions"]))
    write_results(args.out, "update_gate", {"clip": args.clip, "scale": args.scale, "frames": args.frames,
                                            "chunks": args.chunks, "steps": args.steps, "rows": rows},
                  "\n".join(lines))


if __name__ == "__main__":
    main()
