"""Memory and time of each stage against clip length, at 1080p: does memory stay flat as clips grow?

Source: bigbuckbunny's 132 real 720p frames upscaled to 1920x1080 (bicubic) and looped (forwards then
backwards, so the motion stays real) to 30, 120 and 480 frames, encoded once (H.264 CRF 16). Then
the four commands run on it, each in its own process: stdo-cluster (x4, grid 10x5, 2 chunks),
stdo-train (stdo, wdsr_a_mobile, --steps), stdo-export (ONNX fp32 + int8) and stdo-play
(onnxruntime int8, H.264 out). For each: wall time, and memory sampled every 20 ms from
/proc/PID/status: the peak of anonymous memory (RssAnon: what the process itself holds, which
must not grow with the clip) and the peak resident set (VmHWM: anonymous plus the file pages it
has mapped, i.e. the memory-mapped frames it touched, which the kernel can reclaim). Writes
scale.md / scale.json to --out.

    python benchmarks/scale.py --lengths 30,120,480
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from stdo.clips import clip_path
from stdo.stream import StreamOptions, StreamWriter
from stdo.video import read_video
from results_io import machine_line, results_dir, write_results

BIN = Path(sys.executable).parent


def make_source(path: Path, frames: int) -> None:
    """bigbuckbunny upscaled to 1080p, looped back and forth to `frames` frames, H.264 CRF 16."""
    real, fps = read_video(clip_path("bigbuckbunny"))
    order = np.concatenate([np.arange(len(real)), np.arange(len(real) - 2, 0, -1)])
    with StreamWriter(path, fps, StreamOptions(codec="h264", crf=16, preset="veryfast")) as writer:
        for i in range(frames):
            x = torch.from_numpy(real[order[i % len(order)]]).permute(2, 0, 1)[None].float()
            y = torch.nn.functional.interpolate(x, size=(1080, 1920), mode="bicubic", align_corners=False)
            writer.write(y.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous().numpy())


def measured(args: list) -> dict:
    """Run a command; its wall time, peak RssAnon and VmHWM (MiB), sampled from /proc every 20 ms."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"anon": 0, "hwm": 0}

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                text = status.read_text()
            except OSError:
                break
            for key, field in (("anon", "RssAnon"), ("hwm", "VmHWM")):
                m = re.search(rf"{field}:\s+(\d+) kB", text)
                if m:
                    peak[key] = max(peak[key], int(m.group(1)))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    return {"seconds": time.perf_counter() - t0, "peak_anon_mib": peak["anon"] / 1024, "peak_rss_mib": peak["hwm"] / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="30,120,480")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=results_dir("scale"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-scale-") as tmp:
        for n in map(int, args.lengths.split(",")):
            source, run = Path(tmp) / f"src{n}.mp4", Path(tmp) / f"run{n}"
            make_source(source, n)
            stages = {
                "cluster": [BIN / "stdo-cluster", source, run, "--scale", "4", "--grid", "10x5", "--chunks", "2", "-q"],
                "train": [BIN / "stdo-train", run, "--method", "stdo", "--steps", args.steps, "-q"],
                "export": [BIN / "stdo-export", run, "--format", "onnx", "--quantize", "int8", "-q"],
                "play": [BIN / "stdo-play", run / "bundle", "--backend", "onnxruntime", "--precision", "int8", "--out",
                         Path(tmp) / f"sr{n}.mp4", "-q"],
            }
            for stage, command in stages.items():
                row = {"frames": n, "stage": stage, **measured(command)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / "scale.json").write_text(json.dumps(rows, indent=2) + "\n")  # a stopped run keeps its rows
            for path in (run, source, Path(tmp) / f"sr{n}.mp4"):
                subprocess.run(["rm", "-rf", str(path)], check=True)
    write_results(args.out, "scale", rows, markdown(rows, args))


def markdown(rows: list[dict], args) -> str:
    lengths = sorted({r["frames"] for r in rows})
    lines = [f"# Memory and time against clip length (1080p HR, x4, stdo {args.steps} steps)", "",
             f"Machine: {machine_line()}. Peak anonymous memory "
             "(RssAnon) / peak resident set including mapped frames (VmHWM), MiB; wall seconds.", "",
             "| stage | " + " | ".join(f"{n} frames" for n in lengths) + " | anon max/min | s per frame |",
             "|---|" + "---:|" * (len(lengths) + 2)]
    for stage in ("cluster", "train", "export", "play"):
        by = {r["frames"]: r for r in rows if r["stage"] == stage}
        cells = [f"{by[n]['peak_anon_mib']:.0f} / {by[n]['peak_rss_mib']:.0f} MiB, {by[n]['seconds']:.0f} s" for n in lengths]
        anon = [by[n]["peak_anon_mib"] for n in lengths]
        per_frame = ", ".join(f"{by[n]['seconds'] / n:.2f}" for n in lengths)
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {max(anon) / min(anon):.2f} | {per_frame} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
