"""Training throughput: stdo's in-memory sampler and amp modes against a one-PNG-per-patch loader.

Content as in STDO: 1080p frames at x4 with a 10x5 grid (48x54 LR patches, 192x216 HR).
The reference does what the STDO paper's released code does: every LR and HR patch is a
PNG file; each step reads a batch of random patch files, crops them, and trains in
fp32. stdo gathers the same crops from the uint8 frames in memory with one indexing
operation and trains under torch.amp. Same model, batch, crop and steps on both sides.

    python benchmarks/train_speed.py [--model wdsr_a_mobile] [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stdo.clips import clip_path
from stdo.grid import Grid
from stdo.models import create_model
from stdo.train.data import ClipFrames, PatchSampler, patches_of
from stdo.train.loop import cpu_supports_bf16
from stdo.clip import Cut, load_clip
from stdo.resample import downscale_bicubic
from results_io import machine_line, results_dir, write_results


def upscale_to_1080p(frames: np.ndarray) -> np.ndarray:
    """STDO's content is 1080p: bigbuckbunny's 720p frames upscaled (bicubic)."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    y = torch.nn.functional.interpolate(x, size=(1080, 1920), mode="bicubic", align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def timed_steps(model, draw, steps: int, batch: int, dtype, channels_last: bool = False, compile: bool = False) -> float:
    """Samples per second over `steps` optimizer steps (after 3 warm-up steps, which also compile)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    if compile:
        model = torch.compile(model)
    rng = np.random.default_rng(0)

    def step():
        lr, hr = draw(batch, rng)
        if channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            sr = model(lr)
        loss = (sr.float() - hr).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def draw_rate(draw, batch: int, batches: int = 30) -> float:
    """Samples per second a loader draws on its own (no training)."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(batches):
        draw(batch, rng)
    return batches * batch / (time.perf_counter() - t0)


def png_reference(hr: np.ndarray, lr: np.ndarray, grid: Grid, scale: int, crop: int, folder: Path):
    """Write one PNG per LR and HR patch; return a batch loader that reads random files, as the released code does."""
    files = []
    for t in range(len(lr)):
        for r in range(grid.rows):
            for c in range(grid.cols):
                y0, y1, x0, x1 = grid.row_edges[r], grid.row_edges[r + 1], grid.col_edges[c], grid.col_edges[c + 1]
                lp, hp = folder / f"lr_{t}_{r}_{c}.png", folder / f"hr_{t}_{r}_{c}.png"
                Image.fromarray(lr[t, y0:y1, x0:x1]).save(lp)
                Image.fromarray(hr[t, y0 * scale : y1 * scale, x0 * scale : x1 * scale]).save(hp)
                files.append((lp, hp))

    def draw(batch: int, rng: np.random.Generator):
        lrs, hrs = [], []
        for i in rng.integers(0, len(files), batch):
            low = np.asarray(Image.open(files[i][0]).convert("RGB"))
            high = np.asarray(Image.open(files[i][1]).convert("RGB"))
            p = min(crop, low.shape[0], low.shape[1])
            y, x = rng.integers(0, low.shape[0] - p + 1), rng.integers(0, low.shape[1] - p + 1)
            lrs.append(np.pad(low[y : y + p, x : x + p], ((0, crop - p), (0, crop - p), (0, 0)), mode="edge"))
            h = high[y * scale : (y + p) * scale, x * scale : (x + p) * scale]
            hrs.append(np.pad(h, ((0, (crop - p) * scale), (0, (crop - p) * scale), (0, 0)), mode="edge"))
        to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
        return to(lrs), to(hrs)

    return draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wdsr_a_mobile")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=48, help="LR crop (STDO's training crop is 48)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--out", type=Path, default=results_dir("train_speed"))
    args = parser.parse_args()

    scale = 4
    hr = upscale_to_1080p(load_clip(clip_path("bigbuckbunny"), scale, Cut(frames=args.frames)).hr)
    lr = downscale_bicubic(hr, scale)
    grid = Grid(lr.shape[1], lr.shape[2], 5, 10, margin=0)  # STDO's x4 grid on 1080p: 48x54 LR patches
    patches = patches_of(np.zeros((len(lr), grid.rows, grid.cols), np.uint8))
    sampler = PatchSampler(ClipFrames(hr, lr, grid, scale), patches, crop=args.crop, context=0)
    stdo_draw = lambda b, rng: sampler.sample(b, rng)[:2]  # noqa: E731
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory(prefix="stdo-train-speed-") as tmp:
        ref_draw = png_reference(hr, lr, grid, scale, args.crop, Path(tmp))
        results["reference: PNG per patch, fp32"] = timed_steps(create_model(args.model, scale=scale), ref_draw,
                                                                 args.steps, args.batch, None)
        ref_loader = draw_rate(ref_draw, args.batch)
    results["stdo sampler, fp32"] = timed_steps(create_model(args.model, scale=scale), stdo_draw, args.steps,
                                                args.batch, None)
    amp = torch.bfloat16 if cpu_supports_bf16() else None
    if amp is not None:
        results["stdo sampler, bf16 autocast"] = timed_steps(create_model(args.model, scale=scale), stdo_draw,
                                                             args.steps, args.batch, amp)
    results["stdo-train (sampler, amp auto, channels_last)"] = timed_steps(
        create_model(args.model, scale=scale), stdo_draw, args.steps, args.batch, amp, channels_last=True)
    results["stdo-train --compile"] = timed_steps(
        create_model(args.model, scale=scale), stdo_draw, args.steps, args.batch, amp, channels_last=True, compile=True)
    fixed = stdo_draw(args.batch, np.random.default_rng(0))
    results["no loading at all (one batch reused), amp auto, channels_last"] = timed_steps(
        create_model(args.model, scale=scale), lambda b, rng: fixed, args.steps, args.batch, amp, channels_last=True)
    loader_only = draw_rate(stdo_draw, args.batch)

    base = results["reference: PNG per patch, fp32"]
    lines = [
        f"# Training throughput: {args.model}, 1080p x{scale}, grid 10x5, batch {args.batch}, LR crop {args.crop}, "
        f"{args.steps} steps",
        "",
        f"Machine: {machine_line(f'{torch.get_num_threads()} torch threads', f'bf16 units: {cpu_supports_bf16()}')}. "
        "One run; compare ratios.",
        "",
        "| loader, precision | samples/s | x reference |",
        "|---|---:|---:|",
        *[f"| {name} | {v:.1f} | {v / base:.2f}x |" for name, v in results.items()],
        "",
        f"Loaders alone (no training): the reference reads {ref_loader:.0f} samples/s, the stdo sampler draws "
        f"{loader_only:.0f}. The no-loading row is the most any loader can reach on this CPU with this model.",
    ]
    write_results(args.out, f"train_speed_{args.model}", results, "\n".join(lines))


if __name__ == "__main__":
    main()
