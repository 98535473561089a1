"""Server-side VSR beside the on-device methods, trained on the same clip at the same step budgets.

For every clip, scale, budget and method: RGB PSNR, Y-PSNR and SSIM of the whole frames against HR
(the training report), a temporal-consistency figure (mean absolute error, 0..255, of SR frame t+1
warped onto t by the HR frames' own DIS flow; the same for HR is the floor, for bicubic the
reference), parameters, MACs per 1080p output frame (torch.utils.flop_counter on a small input,
scaled by pixels: every model here is linear in its pixel count; DIS flow for brvsr not counted),
latency per frame and peak memory of `stdo-upscale` on this machine with torch and onnxruntime (each
in its own process, its RSS high-water mark VmHWM: ru_maxrss would count the parent's RSS at fork), and training wall time.

Results accumulate in --out/serverside.json keyed by (clip, scale, steps, method): a rerun skips what
is there (resume), --force redoes it. Then serverside.md (tables, with the cited published systems
apart) and serverside.png (PSNR gain vs MACs per 1080p frame, log; the on-device models' budget
marked) are rebuilt from all results.

    python benchmarks/serverside.py --clips bikes --scales 4 --budgets 200,800
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.fileio import write_json
from stdo.flow import neighbour_flows, warp_error
from stdo.rundir import load_frames, method_dir
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions, load_trained
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop
from stdo.resample import upscale_bicubic
from stdo.video import read_video
from results_io import machine_line, results_dir, write_results

CROPS = {"bikes": Crop(640, 272), "bigbuckbunny": Crop(640, 360, 320, 180)}
GRIDS = {2: (20, 10), 4: (10, 5)}
# name -> (stdo-train method, method options)
METHODS = {
    "stdo": ("stdo", {}), "jstdo": ("jstdo", {}), "awdnn": ("awdnn", {}),
    "mfwdsr-r0": ("mfwdsr", {"radius": 0}), "mfwdsr": ("mfwdsr", {"radius": 1}), "wdsr-large": ("wdsr-large", {}),
    "brvsr": ("brvsr", {}), "vinr": ("vinr", {}),
}
ON_DEVICE = ("stdo", "jstdo", "awdnn")
# Published systems that cannot run here. Figures from the papers as gathered in shared/notes/serverside.md;
# "checked" says whether they were re-read against the source in this project.
CITED = [
    ("BasicVSR++ (CVPR'22)", "7.3 M", "REDS4 (BI, x4) 32.39 dB", "DCNv2 alignment: CUDA extension; trained on 8 GPUs",
     "notes"),
    ("PSRT-recurrent (NeurIPS'22)", "13.4 M", "REDS4 (BI, x4) 32.72 dB", "Swin attention over clips: GPU memory "
     "and days of GPU training", "notes"),
    ("VideoINR (CVPR'22)", "11.31 M", "continuous space-time SR (Adobe240 / GoPro)", "DCNv2 (CUDA-only extension)",
     "notes"),
    ("RefVSR (CVPR'22)", "~4.28 M + SPyNet ~1.44 M", "RealMCVSR (needs a reference camera stream)",
     "all-pairs matching ~15.6 GiB at 480x270; trained on 24-48 GB GPUs; no reference stream here", "notes"),
    ("StableVSR (ECCV'24)", "~1.08 B", "perceptual (diffusion), 50 DDPM steps", "~14.5 GB GPU at 320x180; weights on "
     "a model hub, unreachable here", "notes"),
]


def train_method(run: Path, name: str, steps: int, batch: int, crop: int, seed: int) -> dict:
    method, extra = METHODS[name]
    config = TrainConfig(steps=steps, batch=batch, crop_size=crop, seed=seed, checkpoint_every=max(100, steps))
    options = TrainOptions(run=run, method=method, config=config, restart=True,
                           method_options=MethodOptions(**extra))
    t0 = time.perf_counter()
    report = train(options)
    report["bench_wall_seconds"] = time.perf_counter() - t0
    return report


def macs_per_1080p_frame(model: torch.nn.Module, arch: str | None, scale: int, frames: int) -> float:
    """Multiply-accumulates for one 1920x1080 output frame, counted on a 64x64 LR input and scaled by pixels."""
    h = w = 64
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if arch == "brvsr":
            c = model.config.channels
            state = model.backward_step(torch.rand(1, 3, h, w), torch.rand(1, c, h, w), torch.zeros(1, 2, h, w))
            model.forward_step(torch.rand(1, 3, h, w), torch.rand(1, c, h, w), torch.zeros(1, 2, h, w), state)
        elif arch == "vinr":
            model(torch.rand(1, 6, h, w), torch.zeros(1), h * scale, w * scale)
        else:
            model(torch.rand(1, 3 * frames, h, w))
    return counter.get_total_flops() / 2 * (1920 * 1080) / (h * w * scale * scale)


def run_upscale(run: Path, method: str, backend: str, out: Path | None) -> dict:
    """stdo-upscale in its own process: frames per second and peak RSS (MiB)."""
    args = [str(run), "--method", method, "--backend", backend, "-q"] + (["--out", str(out), "--out-crf", "0"] if out else [])
    code = ("from stdo.upscale.cli import upscale_command\n"
            f"try:\n    upscale_command({args!r}, prog_name='stdo-upscale')\nexcept SystemExit as e:\n"
            "    print('EXIT', e.code)\nprint(open('/proc/self/status').read())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    fps = re.search(r"([\d.]+) fps", result.stdout)
    if "EXIT 0" not in result.stdout or not fps:
        return {"error": (result.stdout + result.stderr).strip().splitlines()[-1]}
    rss = int(re.search(r"VmHWM:\s+(\d+) kB", result.stdout).group(1)) / 1024  # this process's own high-water mark
    return {"fps": float(fps.group(1)), "ms_per_frame": 1000 / float(fps.group(1)), "peak_rss_mib": rss}


def measure(run: Path, name: str, report: dict, hr: np.ndarray, hr_flows: np.ndarray, scale: int) -> dict:
    method = METHODS[name][0]
    models, _, _ = load_trained(method_dir(run, method))
    arch = getattr(models[0], "arch", None)
    frames = 1 if arch else models[0].config.frames
    row = {
        "psnr": report["psnr_video"], "psnr_y": report["psnr_y_video"], "ssim": report["ssim"],
        "bicubic": report["bicubic"]["psnr_video"], "bicubic_y": report["bicubic"]["psnr_y_video"],
        "bicubic_ssim": report["bicubic"]["ssim"],
        "params": report["params"], "models": report["num_models"],
        "macs_1080p": macs_per_1080p_frame(models[0], arch, scale, frames),
        "train_seconds": report["train_seconds"], "wall_seconds": report["bench_wall_seconds"],
    }
    if name == "vinr":
        row["any_scale"], row["frame_rate_2x"] = report.get("any_scale"), report.get("frame_rate_2x")
    with tempfile.TemporaryDirectory(prefix="stdo-bench-") as tmp:
        out = Path(tmp) / "sr.mp4"
        row["torch"] = run_upscale(run, method, "torch", out)
        if out.exists():
            sr = read_video(out)[0]
            row["warp_error"] = warp_error(sr, hr_flows, shave=scale)
    row["onnxruntime"] = run_upscale(run, method, "onnxruntime", None) if name != "vinr" else {"error": "torch only"}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="bikes")
    parser.add_argument("--scales", default="4")
    parser.add_argument("--budgets", default="200,800", help="optimizer steps per method (the budgets compared)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="redo results already in the JSON")
    parser.add_argument("--out", type=Path, default=results_dir("serverside"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "serverside.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"rows": {}}
    results["machine"] = machine_line()
    results["settings"] = {"frames": args.frames, "batch": args.batch, "crop": args.crop, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="stdo-serverside-") as tmp:
        for clip in args.clips.split(","):
            for scale in map(int, args.scales.split(",")):
                run = Path(tmp) / f"{clip}-x{scale}"
                cluster(ClusterOptions(source=clip_path(clip), run=run, scale=scale, grid=GRIDS[scale], chunks=2,
                                       frames=args.frames, crop=CROPS[clip], stream=StreamOptions()))
                hr = np.array(load_frames(run)[0])
                lr = np.array(load_frames(run)[1])
                hr_flows = neighbour_flows(hr)[0]
                bicubic = upscale_bicubic(lr, scale).permute(0, 2, 3, 1).to(torch.uint8).numpy()
                floor = {"hr_warp_error": warp_error(hr, hr_flows, shave=scale),
                         "bicubic_warp_error": warp_error(bicubic, hr_flows, shave=scale)}
                results.setdefault("clips", {})[f"{clip}-x{scale}"] = floor
                for steps in map(int, args.budgets.split(",")):
                    for name in args.methods.split(","):
                        key = f"{clip}|x{scale}|{steps}|{name}"
                        if key in results["rows"] and not args.force:
                            continue
                        print(f"{key}: training", flush=True)
                        report = train_method(run, name, steps, args.batch, args.crop, args.seed)
                        results["rows"][key] = measure(run, name, report, hr, hr_flows, scale)
                        r = results["rows"][key]
                        print(f"{key}: {r['psnr']:.3f} dB (bicubic {r['bicubic']:.3f}), warp error "
                              f"{r.get('warp_error', float('nan')):.3f}, {r['wall_seconds']:.0f} s", flush=True)
                        write_json(results_path, results)
    write_results(args.out, "serverside", results, markdown(results))
    plot(results, args.out / "serverside.png")


def _split(key: str) -> tuple[str, int, int, str]:
    clip, scale, steps, name = key.split("|")
    return clip, int(scale[1:]), int(steps), name


def markdown(results: dict) -> str:
    lines = ["# Server-side VSR beside the on-device methods (measured here)", "",
             f"Machine: {results['machine']}. Settings: {results['settings']}. Every model trained on the clip it is",
             "scored on (overfitting, as STDO); PSNR etc. over the whole frames against HR; warp error: mean |SR(t) -",
             "warp(SR(t+1), HR flow)| (0..255), the HR clip's own figure is the floor.", ""]
    by_clip: dict[tuple, list] = {}
    for key, row in results["rows"].items():
        clip, scale, steps, name = _split(key)
        by_clip.setdefault((clip, scale), []).append((steps, name, row))
    for (clip, scale), rows in sorted(by_clip.items()):
        floor = results.get("clips", {}).get(f"{clip}-x{scale}", {})
        lines += [f"## {clip} x{scale}", "",
                  f"Warp error of the HR frames {floor.get('hr_warp_error', float('nan')):.3f}, of bicubic "
                  f"{floor.get('bicubic_warp_error', float('nan')):.3f}.", "",
                  "| steps | method | RGB PSNR | gain | Y-PSNR | SSIM | warp err | params | GMACs/1080p | "
                  "torch ms/frame | torch MiB | ORT ms/frame | ORT MiB | train s |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for steps, name, r in sorted(rows, key=lambda x: (x[0], list(METHODS).index(x[1]))):
            t, o = r.get("torch", {}), r.get("onnxruntime", {})
            cell = lambda d, k, f: format(d[k], f) if k in d else "-"  # noqa: E731
            lines.append(f"| {steps} | {name} | {r['psnr']:.3f} | {r['psnr'] - r['bicubic']:+.3f} | {r['psnr_y']:.3f} | "
                         f"{r['ssim']:.4f} | {r.get('warp_error', float('nan')):.3f} | {r['params']:,} | "
                         f"{r['macs_1080p'] / 1e9:.1f} | {cell(t, 'ms_per_frame', '.1f')} | {cell(t, 'peak_rss_mib', '.0f')} | "
                         f"{cell(o, 'ms_per_frame', '.1f')} | {cell(o, 'peak_rss_mib', '.0f')} | {r['train_seconds']:.0f} |")
        first = rows[0][2]
        lines += ["", f"bicubic: RGB PSNR {first['bicubic']:.3f}, Y-PSNR {first['bicubic_y']:.3f}, SSIM "
                  f"{first['bicubic_ssim']:.4f}.", ""]
        for steps, name, r in sorted(rows):
            if name == "vinr" and r.get("any_scale"):
                a, b = r["any_scale"], r["frame_rate_2x"]
                lines.append(f"- vinr, {steps} steps: at x{a['scale']} {a['psnr']:.3f} dB vs bicubic "
                             f"{a['bicubic']['psnr']:.3f}; 2x frame rate ({b['frames']} dropped frames rebuilt) "
                             f"{b['psnr']:.3f} dB vs bicubic frame blending {b['bicubic']['psnr']:.3f}.")
        lines.append("")
    lines += ["# Published systems that cannot run here (cited, never mixed with the figures above)", "",
              "| system | params | published score | why not run here | source of the figures |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in CITED]
    lines += ["", "'notes': as gathered from the papers in shared/notes/serverside.md, not re-checked in this project.", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    phone = []
    for key, r in sorted(results["rows"].items()):
        clip, scale, steps, name = _split(key)
        marker = "o" if name in ON_DEVICE else "s"
        ax.scatter(r["macs_1080p"], r["psnr"] - r["bicubic"], marker=marker, s=20 + steps / 20)
        ax.annotate(f"{name} {steps}", (r["macs_1080p"], r["psnr"] - r["bicubic"]), fontsize=7)
        if name in ON_DEVICE:
            phone.append(r["macs_1080p"])
    if phone:
        ax.axvline(max(phone), linestyle="--", color="grey")
        ax.text(max(phone), ax.get_ylim()[0], " on-device models' cost", rotation=90, va="bottom", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("MACs per 1080p output frame")
    ax.set_ylabel("RGB PSNR gain over bicubic (dB)")
    ax.set_title("Server-side VSR vs on-device models (marker size: steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
