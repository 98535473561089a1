"""The web player's speed in headless Chromium beside the Python player, on the same bundle, in one run.

A bundle is made the way a user makes one (bikes, 640x272 HR, x4, grid 10x5, 2 chunks, stdo
trained briefly: speed does not depend on the weights; ONNX and TFLite, fp32 and int8; plan
margin 4, what --plan-margin auto chose on trained models). The web player (android_demo/web)
executes the plan over the clip's first frames with ONNX Runtime Web and LiteRT.js, fp32 and
int8, on one WASM thread and on two (the page served cross-origin isolated; one browser session
per variant and thread count, as a viewer plays one variant: LiteRT.js loads its WASM build once per
page, and its threads go to the files compiled first); the Python player runs the same variants
(onnxruntime and ai-edge-litert, 2 threads) on the same RGB frames. Figures are plan-execution
frames per second (inference + stitching, no decoding) after one warm-up frame.

The runtime alone: each runtime's calls of each model on one window of each shape the plan runs it on, in the page
and in Python at 1 and 2 threads: the runtimes' own speeds, which page-side work does not move, and whether threads
help.

Where a web frame's time goes, at 2 threads: the plan's own split (time inside the runtime's calls against the
page's window copies and clamping), and CDP's sampling profile of the page's main thread, self time by script.

Long clips: the bundle's LR size, 250 and 2,000 frames (the clip's frames looped back and forth, H.264 as the
RUN's stream), played by the page (streamed decoding + the plan, ONNX Runtime Web int8, 2 threads) after one
warm-up play: time to the first SR frame from the start of streaming, the most decoded frames waiting at once,
and the JS heap after a collection at 250 frames and at the end.

    python benchmarks/web_speed.py [--frames 30] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch

from stdo.bundle import read_bundle
from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.export.pipeline import ExportOptions, export
from stdo.play.player import Player
from stdo.train.loop import TrainConfig
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop
from stdo.stream import StreamOptions, encode_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "android_demo" / "web"))
from stdo_web import drive, missing_tools, serve  # noqa: E402 - the page's own harness, beside it
from results_io import machine_line, results_dir, write_results  # noqa: E402 - beside this script

VARIANTS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp32"), ("litert", "int8")]
RUNTIME_PACKAGES = ("onnxruntime-web/", "@litertjs/")  # drive.mjs names a script in node_modules by its path there
PLAYER_SCRIPTS = {"plan.js", "yuv.js", "decode.js", "runtimes.js", "bundle.js", "app.js"}


def profile_split(totals: dict[str, float], frames: int) -> dict[str, float]:
    """CDP self time (ms per frame) in the runtime (its WASM and JS glue), the player's own modules, the garbage
    collector, idle (the main thread waiting: WASM worker threads, promises) and everything else (the browser's own
    work, which the profiler labels "(program)", and its built-ins)."""
    split = {"runtime": 0.0, "player": 0.0, "gc": 0.0, "idle": 0.0, "other": 0.0}
    for name, ms in totals.items():
        key = ("player" if name in PLAYER_SCRIPTS else "gc" if name == "(garbage collector)" else "idle"
               if name == "(idle)" else "runtime" if name.startswith(RUNTIME_PACKAGES) else "other")
        split[key] += ms / frames
    return split


def long_clips(bundle: Path, out: Path) -> dict[int, Path]:
    """The bundle's LR frames looped back and forth to 250 and 2,000 frames, encoded as the RUN's stream is."""
    lr = np.load(bundle.parent / "frames/lr.npy")
    loop = np.concatenate([lr, lr[::-1]])
    clips = {}
    for count in (250, 2000):
        clips[count] = out / f"long{count}.mp4"
        encode_stream(clips[count], np.resize(loop, (count, *lr.shape[1:])), 25.0, StreamOptions())
    return clips


def make_bundle(work: Path, frames: int) -> Path:
    run = work / "run"
    cluster(ClusterOptions(source=clip_path("bikes"), run=run, scale=4, grid=(10, 5), chunks=2, frames=frames,
                           crop=Crop(640, 272)))
    train(TrainOptions(run=run, method="stdo", config=TrainConfig(steps=20, batch=4, crop_size=32), evaluate=False))
    export(ExportOptions(run=run, format=("onnx", "tflite"), quantize=("int8",), calibration=16,
                         verify_frames=1, plan_margin=4))
    return run / "bundle"


def python_fps(bundle: Path, backend: str, precision: str, lr: np.ndarray) -> float:
    player = Player(bundle, backend, precision, threads=2)
    player.upscale(lr[:1], 0)  # warm up
    t0 = time.perf_counter()
    for t in range(len(lr)):
        player.upscale(lr[t : t + 1], t)
    return len(lr) / (time.perf_counter() - t0)


def python_call_ms(bundle: Path, backend: str, precision: str, threads: int, model: int, window: np.ndarray,
                   runs: int) -> float:
    """The median ms of a call of one model alone on one window (uint8 [h, w, 3]), as the page's 'runtime' job times
    it."""
    run = Player(bundle, backend, precision, threads=threads).runners[model]
    x = torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)[None], np.float32) / 255)
    for _ in range(2):
        run(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(x)
        times.append(1000 * (time.perf_counter() - t0))
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--out", type=Path, default=results_dir("web_speed"))
    args = parser.parse_args()
    if missing_tools():
        raise SystemExit(f"web_speed: missing {', '.join(missing_tools())}: run make android-deps")
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-web-speed-") as tmp:
        work = Path(tmp)
        bundle = make_bundle(work, args.frames)
        lr = np.load(bundle.parent / "frames/lr.npy")
        plan = read_bundle(bundle).plan
        pairs = sorted({(int(m), int(s)) for m, s in plan.runs[:, 1:3]})  # the (model, shape) pairs the plan runs
        (work / "rgb").mkdir()
        (work / "rgb/lr.rgb").write_bytes(np.ascontiguousarray(lr).tobytes())
        web: dict[tuple[str, str, int], dict] = {}
        alone: dict[tuple, float] = {}  # (backend, precision, model, shape, threads) -> median ms of a call
        with serve({"bundle": bundle, "rgb": work / "rgb"}) as base:
            for threads in (1, 2):
                for backend, precision in VARIANTS:  # a browser session each, as a viewer plays one variant
                    # (runtimes.js: LiteRT.js's threads go to the files compiled first in a page)
                    play = {"bundle": "/bundle/", "kind": "play", "backend": backend, "precision": precision,
                            "threads": threads, "rgb": "/rgb/lr.rgb", "frames": args.frames}
                    jobs = [{**play, "frames": 1}, play]  # a warm-up, then measured
                    if threads == 2:  # the same frames again under CDP's profiler, then with a model run per window
                        jobs += [{**play, "profile": True}, {**play, "batch": False}]
                    jobs += [{**play, "kind": "runtime", "model": model, "shape": shape, "runs": args.frames}
                             for model, shape in pairs]
                    results = drive(base + "web/index.html?test=1", jobs)["results"]
                    for job, result in zip(jobs, results):
                        if not result["ok"]:
                            raise SystemExit(f"web_speed: {backend} {precision}: {result['error']}")
                        if job["kind"] == "runtime":
                            alone[backend, precision, job["model"], job["shape"], threads] = median(result["times"])
                    result = results[1]
                    if threads == 2:
                        result["profile"] = profile_split(results[2]["profile"], args.frames)
                        result["unbatched_fps"] = results[3]["fps"]
                    web[backend, precision, threads] = result
            clips = long_clips(bundle, work / "rgb")
            long = {"bundle": "/bundle/", "kind": "long", "backend": "onnxruntime", "precision": "int8", "threads": 2,
                    "matrix": "bt709", "range": "limited", "ahead": 8}
            plays = drive(base + "web/index.html?test=1", [  # a warm-up play, then the two
                {**long, "video": f"/rgb/{clips[250].name}", "at": []},
                {**long, "video": f"/rgb/{clips[250].name}", "at": [250]},
                {**long, "video": f"/rgb/{clips[2000].name}", "at": [250, 500, 1000, 1500, 2000]}])["results"]
            for r in plays:
                if not r["ok"]:
                    raise SystemExit(f"web_speed: long clip: {r['error']}")
            _, short_run, long_run = plays
        for backend, precision in VARIANTS:
            py = python_fps(bundle, backend, precision, lr)
            row = {"backend": backend, "precision": precision, "python_fps": py, "alone": []}
            for model, shape in pairs:
                h, w = plan.shapes[shape]
                native = {t: python_call_ms(bundle, backend, precision, t, model, lr[0, :h, :w], args.frames)
                          for t in (1, 2)}
                row["alone"].append({"model": model, "window": [h, w], **{f"python_ms_{t}t": native[t] for t in (1, 2)},
                                     **{f"web_ms_{t}t": alone[backend, precision, model, shape, t] for t in (1, 2)}})
            for threads in (1, 2):
                r = web[backend, precision, threads]
                row[f"web_fps_{threads}t"] = r["fps"]
                row[f"isolated_{threads}t"] = r["isolated"]
            two = web[backend, precision, 2]
            row.update(run_ms=two["run_ms"], copy_ms=two["copy_ms"], profile=two["profile"],
                       web_fps_2t_window_by_window=two["unbatched_fps"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = machine_line()
    lines = ["# Web player speed (headless Chromium) beside the Python player", "",
             f"Machine: {machine}; Debian's chromium, WASM SIMD. Bundle: bikes 640x272 x4 (LR 160x68), 2 models, "
             f"plan margin 4; {args.frames} frames, plan execution only (no decoding). Generated by "
             "benchmarks/web_speed.py.", "",
             "| runtime (web / Python) | precision | Python fps | web fps, 1 thread | web fps, 2 threads | "
             "web (2 threads) / Python |", "|---|---|---:|---:|---:|---:|"]
    names = {"onnxruntime": "ONNX Runtime Web / onnxruntime", "litert": "LiteRT.js / ai-edge-litert"}
    for r in rows:
        lines.append(f"| {names[r['backend']]} | {r['precision']} | {r['python_fps']:.1f} | {r['web_fps_1t']:.1f} | "
                     f"{r['web_fps_2t']:.1f} | {r['web_fps_2t'] / r['python_fps']:.2f}x |")
    lines += ["", "The runtime alone: each model's calls on one window of each shape the plan runs it on (the first "
              "frame's top-left window), nothing else in the page or the process, the median ms of a call: the two "
              "runtimes' own speeds, which no change to the page's code moves.", "",
              "| runtime | precision | model | window | web, 1 thread | web, 2 threads | web threads gain | "
              "Python, 1 thread | Python, 2 threads | web / Python speed, 1 thread | 2 threads |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        for a in r["alone"]:
            h, w = a["window"]
            lines.append(f"| {names[r['backend']].split(' / ')[0]} | {r['precision']} | {a['model']} | {h}x{w} | "
                         f"{a['web_ms_1t']:.1f} | {a['web_ms_2t']:.1f} | {a['web_ms_1t'] / a['web_ms_2t']:.2f}x | "
                         f"{a['python_ms_1t']:.1f} | {a['python_ms_2t']:.1f} | "
                         f"{a['python_ms_1t'] / a['web_ms_1t']:.2f}x | "
                         f"{a['python_ms_2t'] / a['web_ms_2t']:.2f}x |")
    lines += ["", "Where a web frame's time goes at 2 threads, ms per frame: the plan's split (inside the runtime's calls | "
              "the page's window copies and clamping), and CDP's profile of the main thread (self time: runtime WASM "
              "and glue | the player's modules | garbage collector | idle, waiting on worker threads | other: the "
              "browser's own work).", "",
              "| runtime | precision | frame | in the runtime | page copies | profile: runtime | player | GC | idle | "
              "other | fps, a run per window (not batched) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["profile"]
        lines.append(f"| {names[r['backend']].split(' / ')[0]} | {r['precision']} | {1000 / r['web_fps_2t']:.1f} | "
                     f"{r['run_ms']:.1f} | {r['copy_ms']:.2f} | {p['runtime']:.1f} | {p['player']:.2f} | "
                     f"{p['gc']:.2f} | {p['idle']:.1f} | {p['other']:.1f} | {r['web_fps_2t_window_by_window']:.1f} |")
    ratio = long_run["first_ms"] / short_run["first_ms"]
    heaps = [s["heap"] / 2**20 for s in long_run["samples"]]
    heap250, heap2000 = heaps[0], heaps[-1]
    lines += ["", "Long clips (LR 160x68, streamed + the plan, ONNX Runtime Web int8, 2 threads): time to the first SR "
              "frame from the start of streaming (after a warm-up play), the most decoded frames waiting at once, and the JS "
              "heap after a collection.", "",
              "| clip | first frame ms | decoded frames waiting, at most | JS heap MiB at 250 frames | at the end | "
              "at 250, 500, 1000, 1500, 2000 |", "|---|---:|---:|---:|---:|---|",
              f"| 250 frames | {short_run['first_ms']:.0f} | {short_run['held']} | "
              f"{short_run['samples'][0]['heap'] / 2**20:.2f} | | |",
              f"| 2,000 frames | {long_run['first_ms']:.0f} ({ratio:.2f}x) | {long_run['held']} | {heap250:.2f} | "
              f"{heap2000:.2f} ({heap2000 / heap250:.2f}x) | {', '.join(f'{h:.1f}' for h in heaps)} |"]
    write_results(args.out, "web_speed", {"machine": machine, "frames": args.frames, "rows": rows,
                                           "long": {"250": short_run, "2000": long_run}}, "\n".join(lines))


if __name__ == "__main__":
    main()
