"""Bytes delivered vs quality against the original HR frames: does stdo beat sending more video bits?

For each clip and scale, four ways to deliver the clip:
  (a) HR H.264 (yuv420p, BT.709) at a ladder of CRFs: plain streaming;
  (b) the LR stream at a ladder of CRFs, upscaled by bicubic on the client;
  (c) the same LR streams + stdo's int8 ONNX models + chunk map, played by stdo-play;
  (d) the same with awdnn (one model) and jstdo (one joint model).
Bytes = what the bundle ships (LR video + every model file of the int8 variant + chunk map + plan;
models counted once per clip). Quality: RGB PSNR, Y-PSNR, SSIM of the played frames against
the original HR (border shave = scale, mean over frames). Every method trains on the decoded
LR stream of its point, for the same total optimizer steps (per-chunk models split them).

BD-rate of (b), (c), (d) against (a) uses the `bjontegaard` package (Akima interpolation over
the PSNR range where both curves exist; the overlap is reported beside it), once with the model
bytes and once without them (the limit of a long clip, where they are amortized). The break-even
clip length is the duration at which the model bytes are paid back by the video bytes saved
against an HR stream of the same PSNR (HR bytes interpolated on the HR curve in log-rate),
assuming the models keep their quality over a longer clip.

    python benchmarks/rate_quality.py --clips bikes,bigbuckbunny --scales 4,2 --frames 30 --steps 400
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.export.pipeline import ExportOptions, export
from stdo.play.player import Player, lr_stream
from stdo.ratequality import hr_stream_point, quality
from stdo.rundir import LR_STREAM
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.pipeline import TrainOptions, train
from stdo.video import Crop, upscale_bicubic

GRIDS = {2: (20, 10), 4: (10, 5)}
CROPS = {"bikes": Crop(640, 272), "bigbuckbunny": Crop(640, 360, 320, 180)}
METHODS = ("stdo", "awdnn", "jstdo")


def bicubic_frames(lr: np.ndarray, scale: int):
    for frame in lr:
        yield upscale_bicubic(frame[None], scale)[0].byte().permute(1, 2, 0).numpy()


def method_point(run: Path, method: str, steps: int, hr: np.ndarray, scale: int) -> dict:
    t0 = time.perf_counter()
    train(TrainOptions(run=run, method=method, config=TrainConfig(steps=steps), restart=True, evaluate=False))
    out = run / f"bundle-{method}"
    export(ExportOptions(run=run, method=method, formats=("onnx",), quantize=("int8",), out=out, verify_frames=4))
    player = Player(out, backend="onnxruntime", precision="int8")
    frames = (sr for _, _, sr in player.play(lr_stream(player)))
    rgb, y, s = quality(frames, hr, scale)
    sizes = player.delivered_bytes
    return {"bytes": sizes["total"], "video_bytes": sizes["video"], "model_bytes": sizes["models"],
            "map_bytes": sizes["model_map"] + sizes["plan"], "psnr": rgb, "psnr_y": y, "ssim": s,
            "seconds": time.perf_counter() - t0}


def hr_bytes_at(hr_curve: list[dict], target: float) -> float | None:
    """HR stream bytes at `target` RGB PSNR, interpolated in log-bytes; None outside the ladder."""
    points = sorted(hr_curve, key=lambda p: p["psnr"])
    ps, logb = [p["psnr"] for p in points], [np.log(p["bytes"]) for p in points]
    if not ps[0] <= target <= ps[-1]:
        return None
    return float(np.exp(np.interp(target, ps, logb)))


def bd_rates(anchor: list[dict], test: list[dict]) -> dict:
    import bjontegaard as bd

    out = {}
    for metric in ("psnr", "psnr_y"):
        a_rate, a_q = [p["bytes"] for p in anchor], [p[metric] for p in anchor]
        t_rate, t_q = [p["bytes"] for p in test], [p[metric] for p in test]
        lo, hi = max(min(a_q), min(t_q)), min(max(a_q), max(t_q))
        overlap = max(hi - lo, 0) / (max(max(a_q), max(t_q)) - min(min(a_q), min(t_q)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = bd.bd_rate(a_rate, a_q, t_rate, t_q, method="akima", require_matching_points=False,
                               min_overlap=0) if len(test) >= 2 and overlap > 0 else float("nan")
        out[metric] = {"bd_rate_percent": None if np.isnan(value) else float(value), "overlap": overlap,
                       "psnr_range": [lo, hi]}
    return out


def run_clip(clip: str, scale: int, args, work: Path) -> dict:
    source = clip_path(clip)
    results: dict = {"clip": clip, "scale": scale, "frames": args.frames, "crop": str(CROPS[clip]), "lr": []}
    hr = None
    for crf in args.lr_crfs:
        run = work / f"{clip}-x{scale}-crf{crf}"
        summary = cluster(ClusterOptions(source=source, run=run, scale=scale, grid=GRIDS[scale], chunks=args.chunks,
                                         frames=args.frames, crop=CROPS[clip], stream=StreamOptions(crf=crf),
                                         force=True))
        hr = np.load(run / "frames/hr.npy")
        lr = np.load(run / "frames/lr.npy")
        fps = json.loads((run / "run.json").read_text())["frames"]["fps"]
        video_bytes = (run / LR_STREAM).stat().st_size
        rgb, y, s = quality(bicubic_frames(lr, scale), hr, scale)
        point = {"crf": crf, "video_bytes": video_bytes, "bicubic": {"bytes": video_bytes, "psnr": rgb, "psnr_y": y,
                                                                    "ssim": s}}
        for method in args.methods:
            point[method] = method_point(run, method, args.steps, hr, scale)
            print(f"{clip} x{scale} LR crf {crf}: {method} {point[method]['psnr']:.3f} dB "
                  f"{point[method]['bytes']:,} B (bicubic {rgb:.3f} dB {video_bytes:,} B)", flush=True)
        results["lr"].append(point)
        results["duration_s"] = summary.frames / fps
        results["fps"] = fps
    results["hr"] = [hr_stream_point(lambda: iter(hr), results["fps"], StreamOptions(crf=c), scale).to_dict()
                     for c in args.hr_crfs]
    for name in ("bicubic", *args.methods):
        curve = [p[name] for p in results["lr"]]
        results.setdefault("bd_rate", {})[name] = bd_rates(results["hr"], curve)
        if name == "bicubic":
            continue
        # the long-clip limit: model bytes amortized away, only the video counts
        video_only = [{**p[name], "bytes": p[name]["video_bytes"] + p[name]["map_bytes"]} for p in results["lr"]]
        results["bd_rate"][f"{name}, models amortized"] = bd_rates(results["hr"], video_only)
        for p in results["lr"]:
            m = p[name]
            hr_equal = hr_bytes_at(results["hr"], m["psnr"])
            m["hr_bytes_same_psnr"] = hr_equal
            # the chunk map and plan grow with the clip like the video; the models are paid once
            saving = None if hr_equal is None else hr_equal - m["video_bytes"] - m["map_bytes"]
            m["break_even_s"] = (None if not saving or saving <= 0
                                 else m["model_bytes"] / (saving / results["duration_s"]))
    return results


def write_markdown(all_results: list[dict], args, path: Path) -> None:
    lines = ["# Rate-quality: bytes delivered vs quality against the original HR", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}. "
             f"{args.frames} frames per clip; every method trained for {args.steps} optimizer steps in all "
             f"(stdo: {args.steps // args.chunks} per chunk model, {args.chunks} chunks), wdsr_a_mobile, on the "
             "decoded LR stream of its point; models shipped as ONNX int8 and played by stdo-play (onnxruntime). "
             "Bytes = LR video + int8 models + chunk map + inference plan. Generated by benchmarks/rate_quality.py.", ""]
    for r in all_results:
        lines += [f"## {r['clip']} x{r['scale']} ({r['crop']}, {r['duration_s']:.2f} s)", "",
                  "| delivery | CRF | bytes | RGB PSNR | Y-PSNR | SSIM | HR bytes at that PSNR | break-even length |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in r["hr"]:
            lines.append(f"| (a) HR H.264 | {p['crf']} | {p['bytes']:,} | {p['psnr']:.3f} | {p['psnr_y']:.3f} | "
                         f"{p['ssim']:.4f} | | |")
        for p in r["lr"]:
            b = p["bicubic"]
            lines.append(f"| (b) LR + bicubic | {p['crf']} | {b['bytes']:,} | {b['psnr']:.3f} | {b['psnr_y']:.3f} | "
                         f"{b['ssim']:.4f} | | |")
            for method in args.methods:
                m = p[method]
                hr_b = "outside the HR ladder" if m["hr_bytes_same_psnr"] is None else f"{m['hr_bytes_same_psnr']:,.0f}"
                be = ("never (the LR stream and maps alone cost more)" if m["break_even_s"] is None
                      else f"{m['break_even_s']:.1f} s")
                lines.append(f"| ({'c' if method == 'stdo' else 'd'}) LR + {method} int8 | {p['crf']} | "
                             f"{m['bytes']:,} (models {m['model_bytes']:,}) | {m['psnr']:.3f} | {m['psnr_y']:.3f} | "
                             f"{m['ssim']:.4f} | {hr_b} | {be} |")
        lines += ["", "| against (a) | BD-rate, RGB PSNR | overlap | BD-rate, Y-PSNR | overlap |", "|---|---|---|---|---|"]
        for name, bd in r["bd_rate"].items():
            cells = []
            for metric in ("psnr", "psnr_y"):
                v = bd[metric]["bd_rate_percent"]
                cells += ["no overlap" if v is None else f"{v:+.1f}%", f"{100 * bd[metric]['overlap']:.0f}%"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("BD-rate: average bytes change at equal quality against HR H.264, over the PSNR range both curves "
                 "cover (negative = fewer bytes). A low overlap means the curves share little of their PSNR range.")
    path.write_text("\n".join(lines) + "\n")


def plot(all_results: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(5 * len(all_results), 4), dpi=110, squeeze=False)
    for ax, r in zip(axes[0], all_results):
        hr = sorted(r["hr"], key=lambda p: p["bytes"])
        ax.plot([p["bytes"] / 1024 for p in hr], [p["psnr"] for p in hr], "k-o", label="HR H.264")
        for name, style in (("bicubic", "--s"), *((m, "-^") for m in args.methods)):
            pts = sorted((p[name] for p in r["lr"]), key=lambda p: p["bytes"])
            ax.plot([p["bytes"] / 1024 for p in pts], [p["psnr"] for p in pts], style,
                    label=f"LR + {name}" + (" int8" if name != "bicubic" else ""))
        ax.set_xscale("log")
        ax.set_xlabel("bytes delivered (KiB, log)")
        ax.set_ylabel("RGB PSNR vs HR (dB)")
        ax.set_title(f"{r['clip']} x{r['scale']}, {r['frames']} frames")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="bikes,bigbuckbunny")
    parser.add_argument("--scales", default="4,2")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps per method, in all")
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--lr-crfs", default="18,28,38")
    parser.add_argument("--hr-crfs", default="18,23,28,33,38,43,48")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rate_quality")
    parser.add_argument("--report-only", action="store_true",
                        help="write the markdown and plot from OUT/rate_quality.json (the clips finished so far)")
    args = parser.parse_args()
    args.lr_crfs = [int(c) for c in args.lr_crfs.split(",")]
    args.hr_crfs = [int(c) for c in args.hr_crfs.split(",")]
    args.methods = [m for m in args.methods.split(",") if m]
    args.out.mkdir(parents=True, exist_ok=True)
    all_results = []
    if args.report_only:
        all_results = json.loads((args.out / "rate_quality.json").read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="stdo-rq-") as tmp:
            for clip in args.clips.split(","):
                for scale in (int(s) for s in args.scales.split(",")):
                    all_results.append(run_clip(clip, scale, args, Path(tmp)))
                    (args.out / "rate_quality.json").write_text(json.dumps(all_results, indent=1))
    write_markdown(all_results, args, args.out / "rate_quality.md")
    plot(all_results, args, args.out / "rate_quality.png")
    print((args.out / "rate_quality.md").read_text())


if __name__ == "__main__":
    main()
