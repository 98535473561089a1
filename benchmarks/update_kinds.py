"""Which update of the prior pays: a restricted update (per-channel gains and biases) against sparse updates of
the conv weights at several shares, and an update of every weight, each shipped as a coded int8 ONNX update.

One RUN (the demo's kept point by default: bikes, 250 frames, x4, H.264 CRF 27, 2 chunks), jstdo (one joint
model) trained from the shipped prior for --steps with each --tune; exported as ONNX int8 with coded updates and
played by stdo-play (onnxruntime int8). Bytes: the update (what the per-video model adds to the carried prior) and
the bundle (LR video + update + plan). Quality: RGB PSNR of the played frames against the original HR. The prior
never saw the clip (scikit-image photographs).

    python benchmarks/update_kinds.py --steps 400
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
from stdo.export.pipeline import ExportOptions, export
from stdo.play.player import Player, lr_stream
from stdo.ratequality import quality
from stdo.rundir import LR_STREAM
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop

from rate_quality import prior_frames  # benchmarks/, on the path when run as a script
from results_io import machine_line, results_dir, write_results

# label -> (--tune, --sparse-share)
KINDS = {"channels": ("channels", None), "sparse 0.2%": ("sparse", 0.002), "sparse 1%": ("sparse", 0.01),
         "sparse 5%": ("sparse", 0.05), "all": ("all", None)}


def measure(run: Path, label: str, steps: int, hr: np.ndarray, scale: int) -> dict:
    tune, share = KINDS[label]
    options = MethodOptions(init="prior", tune=tune, **({"sparse_share": share} if share is not None else {}))
    t0 = time.perf_counter()
    train(TrainOptions(run=run, method="jstdo", config=TrainConfig(steps=steps), restart=True, evaluate=False,
                       method_options=options))
    seconds = time.perf_counter() - t0
    out = run / f"bundle-{tune}-{share}"
    export(ExportOptions(run=run, method="jstdo", format=("onnx",), quantize=("int8",), out=out, verify_frames=4))
    player = Player(out, backend="onnxruntime", precision="int8")
    rgb, y, s = quality((sr for _, _, sr in player.play(lr_stream(player))), hr, scale)
    sizes = player.delivered_bytes
    return {"kind": label, "tune": tune, "sparse_share": share, "steps": steps, "update_bytes": sizes["models"],
            "bundle_bytes": sizes["total"], "video_bytes": sizes["video"], "psnr": rgb, "psnr_y": y, "ssim": s,
            "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--crf", type=int, default=27, help="LR stream CRF (H.264)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"of {', '.join(KINDS)}".replace("%", "%%"))
    parser.add_argument("--out", type=Path, default=results_dir("update_kinds"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stdo-uk-") as tmp:
        run = Path(tmp) / "run"
        cluster(ClusterOptions(source=clip_path(args.clip), run=run, scale=args.scale,
                               grid=(10, 5) if args.scale == 4 else (20, 10), chunks=2, frames=args.frames,
                               crop=Crop(640, 272), stream=StreamOptions(crf=args.crf)))
        hr = np.load(run / "frames/hr.npy")
        video_bytes = (run / LR_STREAM).stat().st_size
        rgb, y, s = quality(prior_frames(np.load(run / "frames/lr.npy"), args.scale), hr, args.scale)
        rows = [{"kind": "prior alone", "tune": None, "sparse_share": None, "steps": 0, "update_bytes": 0,
                 "bundle_bytes": video_bytes, "video_bytes": video_bytes, "psnr": rgb, "psnr_y": y, "ssim": s,
                 "train_seconds": 0.0}]
        for label in args.kinds.split(","):
            rows.append(measure(run, label, args.steps, hr, args.scale))
            r = rows[-1]
            print(f"{label}: {r['psnr']:.3f} dB, update {r['update_bytes']:,} B, bundle {r['bundle_bytes']:,} B",
                  flush=True)
    result = {"clip": args.clip, "scale": args.scale, "frames": args.frames, "crf": args.crf, "rows": rows}
    path = args.out / "update_kinds.json"
    earlier = json.loads(path.read_text()) if path.exists() else None
    if earlier and all(earlier[k] == result[k] for k in ("clip", "scale", "frames", "crf")):
        # the kinds not measured now are kept from the earlier run of the same setting, in the table's order
        measured = {r["kind"] for r in rows}
        kept = {r["kind"]: r for r in earlier["rows"] if r["kind"] not in measured}
        by_kind = {**kept, **{r["kind"]: r for r in rows}}
        rows = result["rows"] = [by_kind[k] for k in ("prior alone", *KINDS) if k in by_kind]
    lines = ["# Update kinds: what the per-video update of the prior changes, and what it costs", "",
             f"Machine: {machine_line()}. "
             f"{args.clip}, {args.frames} frames, x{args.scale}, LR H.264 CRF {args.crf}, jstdo from the prior, "
             f"{args.steps} steps; ONNX int8 coded update played by stdo-play (onnxruntime). "
             "Generated by benchmarks/update_kinds.py.", "",
             "| update | update bytes | bundle bytes | RGB PSNR | Y-PSNR | SSIM | train s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['update_bytes']:,} | {r['bundle_bytes']:,} | {r['psnr']:.3f} | "
                     f"{r['psnr_y']:.3f} | {r['ssim']:.4f} | {r['train_seconds']:.0f} |")
    write_results(args.out, "update_kinds", result, "\n".join(lines))


if __name__ == "__main__":
    main()
