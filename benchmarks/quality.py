"""Quality of every training method on real clips, under three protocols.

- paper: every model has the same size and the same training (STDO's protocol): per-chunk
  methods ship k models and train each for the full step budget (k times the compute).
- cost: every model the same size, every method the same total steps (k x the budget):
  joint models get what the k per-chunk models get together, as DESIGN's "methods compare
  at equal cost" asks.
- bytes: the same total model bytes and the same total steps (the delivery view):
  per-chunk methods get narrower models so that k of them weigh what one joint model
  weighs, and split the step budget between them.
 jstdo runs twice:
with its data-aware chunk sampling and with uniform sampling, to show the rule's effect.
Writes a markdown table and a PNG plot (PSNR gain over bicubic) to --out.

    python benchmarks/quality.py --clips bikes --scales 4 --steps 1500 --frames 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.models import create_model
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop
from results_io import machine_line, results_dir, write_results

GRIDS = {2: (20, 10), 4: (10, 5)}  # STDO's grids (cols x rows) at x2 and x4
CROPS = {"bikes": Crop(640, 272), "bigbuckbunny": Crop(640, 360, 320, 180), "carphone": Crop(176, 144)}
VARIANTS = [("stdo", {}), ("stdo-plain", {"joint_start": 0.0}), ("jstdo", {"sampling": "error"}),
            ("jstdo-uniform", {"sampling": "uniform"}), ("awdnn", {}), ("nas", {}), ("cafm", {"cafm_chunks": "time"}),
            ("cafm-stdo", {"cafm_chunks": "stdo"})]
SWEEP_METHODS = "stdo,stdo-plain,jstdo,awdnn,cafm"
PER_CHUNK = {"stdo", "nas"}


def params_of(model: str, scale: int, units: int) -> int:
    return sum(p.numel() for p in create_model(model, scale=scale, num_residual_units=units).parameters())


def units_for_equal_bytes(model: str, scale: int, k: int) -> int:
    """Residual units that make k models weigh about what one full model weighs."""
    full_units = create_model(model, scale=scale).config.num_residual_units
    target = params_of(model, scale, full_units)
    return min(range(2, full_units + 1), key=lambda u: abs(k * params_of(model, scale, u) - target))


def train_setting(run: Path, clip: str, scale: int, methods: list, protocols: list[str], steps_per_model: int,
                  model: str, chunks: int, seed: int = 0, **extra_row) -> list[dict]:
    """Every method under every protocol on one RUN; a joint method is the same run under paper and bytes."""
    rows, done = [], {}
    for protocol in protocols:
        for name, extra in methods:
            method = name.split("-")[0]
            units, steps = None, steps_per_model
            if protocol == "bytes" and method in PER_CHUNK:
                units = units_for_equal_bytes(model, scale, chunks)
            if (protocol == "paper" and method in PER_CHUNK) or protocol == "cost":
                steps = steps_per_model * chunks  # a method's total: per-chunk models split it, k budgets in all
            key = (name, units, steps)
            if key not in done:
                t0 = time.perf_counter()
                done[key] = (train(TrainOptions(
                    run=run, method=method, restart=True,
                    config=TrainConfig(steps=steps, checkpoint_every=steps, seed=seed),
                    method_options=MethodOptions(model=model, units=units, **extra))),
                    time.perf_counter() - t0)
            report, seconds = done[key]
            rows.append({"clip": clip, "scale": scale, "protocol": protocol, "method": name, "steps": steps,
                         "model": model, "seed": seed, **extra_row,
                         "psnr_video": report["psnr_video"], "psnr_stdo": report["psnr_stdo"],
                         "ssim": report["ssim"], "bicubic_video": report["bicubic"]["psnr_video"],
                         "bicubic_stdo": report["bicubic"]["psnr_stdo"], "params": report["params"],
                         "kib": report["bytes_fp32"] / 1024, "seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="bikes,bigbuckbunny")
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--protocols", default="paper,bytes", help="of paper, cost, bytes")
    parser.add_argument("--methods", help=f"[default: all; with --sweep: {SWEEP_METHODS}]")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--model", default="wdsr_a_mobile")
    parser.add_argument("--out", type=Path, help="results folder [default: results/quality, with --sweep results/sweep]")
    parser.add_argument("--sweep", action="store_true",
                        help="the capacity sweep instead: gain vs clip length (--lengths) and model size (--models) "
                             "under the paper (fixed per-model) and cost (fixed total) budgets; writes sweep.*")
    parser.add_argument("--lengths", default="16,60,250")
    parser.add_argument("--models", default="wdsr_a_mobile,wdsr_a")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--replot", action="store_true",
                        help="with --sweep: rewrite sweep.md and sweep.png from --out's sweep.json (rows of several "
                             "sweeps put together, e.g. another model's), training nothing")
    args = parser.parse_args()
    args.out = args.out or results_dir("sweep" if args.sweep else "quality")
    if args.sweep and args.replot:
        rows = json.loads((args.out / "sweep.json").read_text())
        (args.out / "sweep.md").write_text(sweep_markdown(rows, args) + "\n")
        return sweep_plot(rows, args.out / "sweep.png")
    if args.sweep:
        return sweep(args)
    methods = [v for v in VARIANTS if v[0] in (args.methods or ",".join(n for n, _ in VARIANTS)).split(",")]

    rows = []
    with tempfile.TemporaryDirectory(prefix="stdo-quality-") as tmp:
        for clip in args.clips.split(","):
            for scale in map(int, args.scales.split(",")):
                run = Path(tmp) / f"{clip}_x{scale}"
                cluster(ClusterOptions(source=clip_path(clip), run=run, scale=scale, grid=GRIDS[scale],
                                       chunks=args.chunks, frames=args.frames, crop=CROPS[clip], margin=8,
                                       stream=StreamOptions(lossless=True)))  # the paper's protocol
                rows += train_setting(run, clip, scale, methods, args.protocols.split(","), args.steps, args.model,
                                      args.chunks)

    header = (f"# Quality: {args.frames} frames per clip, {args.chunks} chunks, {args.steps} steps per model "
              f"(paper), {args.steps} x {args.chunks} per method (cost) or {args.steps} per method (bytes), {args.model}")
    lines = [header, "", f"Machine: {machine_line()}.", "",
             "| clip | x | protocol | method | steps | PSNR video | gain | PSNR STDO | gain | SSIM | params | KiB fp32 |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['scale']} | {r['protocol']} | {r['method']} | {r['steps']} | {r['psnr_video']:.2f} | "
                     f"{r['psnr_video'] - r['bicubic_video']:+.2f} | {r['psnr_stdo']:.2f} | "
                     f"{r['psnr_stdo'] - r['bicubic_stdo']:+.2f} | {r['ssim']:.4f} | {r['params']:,} | {r['kib']:.0f} |")
    lines += ["", "gain = PSNR over bicubic on the same frames (bicubic: "
              + ", ".join(sorted({f"{r['clip']} x{r['scale']} {r['bicubic_video']:.2f} dB" for r in rows})) + ")."]
    write_results(args.out, "quality", rows, "\n".join(lines))
    plot(rows, args.out / "quality.png")


def sweep(args) -> None:
    """Where per-chunk models win: gain over bicubic against clip length and model size, at both budgets."""
    methods = [v for v in VARIANTS if v[0] in (args.methods or SWEEP_METHODS).split(",")]
    rows = []
    scale = int(args.scales.split(",")[-1])
    with tempfile.TemporaryDirectory(prefix="stdo-sweep-") as tmp:
        for clip in args.clips.split(","):
            for length in map(int, args.lengths.split(",")):
                run = Path(tmp) / f"{clip}_{length}"
                cluster(ClusterOptions(source=clip_path(clip), run=run, scale=scale, grid=GRIDS[scale],
                                       chunks=args.chunks, frames=length, crop=CROPS[clip], margin=8,
                                       stream=StreamOptions(lossless=True)))
                for model in args.models.split(","):
                    for seed in map(int, args.seeds.split(",")):
                        rows += train_setting(run, clip, scale, methods, ["paper", "cost"], args.steps, model,
                                              args.chunks, seed=seed, frames=length)
                        args.out.mkdir(parents=True, exist_ok=True)
                        (args.out / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")  # rows as they come
    write_results(args.out, "sweep", rows, sweep_markdown(rows, args))
    sweep_plot(rows, args.out / "sweep.png")


def _gain(r: dict) -> float:
    return r["psnr_video"] - r["bicubic_video"]


def sweep_markdown(rows: list[dict], args) -> str:
    import numpy as np

    settings = list(dict.fromkeys((r["clip"], r["model"], r["protocol"]) for r in rows))
    lengths = sorted({r["frames"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# Capacity sweep: gain over bicubic (dB, whole frames) vs clip length, x{rows[0]['scale']}, "
             f"{args.steps} steps per model (paper) or {args.steps} x {args.chunks} per method (cost), seeds {seeds}",
             "", f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}. Cells: mean over "
             "seeds (spread max - min when 2 or more)."]
    for clip, model, protocol in settings:
        lines += ["", f"## {clip}, {model}, {protocol}", "",
                  "| method | " + " | ".join(f"{n} frames" for n in lengths) + " |", "|---|" + "---:|" * len(lengths)]
        for m in methods:
            cells = []
            for n in lengths:
                g = [_gain(r) for r in rows if (r["clip"], r["model"], r["protocol"], r["method"], r["frames"]) ==
                     (clip, model, protocol, m, n)]
                cells.append("-" if not g else f"{np.mean(g):+.3f}" + (f" ({max(g) - min(g):.3f})" if len(g) > 1 else ""))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys((r["clip"], r["model"], r["protocol"]) for r in rows))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.6), squeeze=False)
    for ax, (clip, model, protocol) in zip(axes[0], settings):
        mine = [r for r in rows if (r["clip"], r["model"], r["protocol"]) == (clip, model, protocol)]
        for m in dict.fromkeys(r["method"] for r in mine):
            pts = sorted({r["frames"] for r in mine if r["method"] == m})
            gains = [[_gain(r) for r in mine if (r["method"], r["frames"]) == (m, n)] for n in pts]
            mean = np.array([np.mean(g) for g in gains])
            spread = np.array([[mean[i] - min(g), max(g) - mean[i]] for i, g in enumerate(gains)]).T
            ax.errorbar(pts, mean, yerr=spread, marker="o", capsize=3, label=m)
        lengths = sorted({r["frames"] for r in mine})
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.minorticks_off()
        ax.set_xlabel("clip length (frames)")
        ax.set_title(f"{clip}, {model}, {protocol}", fontsize=9)
        ax.axhline(0, color="black", linewidth=0.8)
    axes[0][0].set_ylabel("gain over bicubic (dB)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({(r["clip"], r["scale"], r["protocol"]) for r in rows})
    names = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(settings)), 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        gains = [next((r["psnr_video"] - r["bicubic_video"] for r in rows
                       if (r["clip"], r["scale"], r["protocol"]) == s and r["method"] == name), 0) for s in settings]
        ax.bar([j + i * width for j in range(len(settings))], gains, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(settings))])
    ax.set_xticklabels([f"{c} x{s}\n{p}" for c, s, p in settings])
    ax.set_ylabel("whole-video PSNR gain over bicubic (dB)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
