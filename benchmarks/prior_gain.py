"""The shipped prior alone, as a client runs it when a video ships nothing else: its gain over bicubic of the same
decoded LR stream, per clip, scale, codec and CRF, for the files clients carry (ONNX fp32 and int8).

For each real clip (none of which the prior was trained on: its facts list its content): the first --frames HR
frames, LR made by the shipped downscaler and coded by the LR codec at each CRF (what stdo-cluster ships), decoded
as a client decodes it; then bicubic, and the prior's carried ONNX files on whole decoded frames. RGB PSNR against
the HR frames, a border of `scale` pixels shaved, over all frames.

Also each prior's validation curve: its gain over bicubic on the held-out photographs (mixed codecs and CRFs) at
each evaluated step, fp32 from the training's own curve (the repository's prior-state/), and int8 measured here
from the step's snapshot, quantized exactly as the carried int8 file is (calibrated on the training content;
needs the recipe's folder, make prior's PRIOR_WORK, for the sets). Steps count from the start of the recipe: a
run that continued an earlier prior adds that prior's steps. Writes results/prior_gain/.

    python benchmarks/prior_gain.py --clips bikes,bigbuckbunny,carphone --scales 4,2 --crfs 23,27,31 --frames 60
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from results_io import machine_line, results_dir, write_results
from stdo.clip import Cut, load_clip
from stdo.clips import clip_path
from stdo.fileio import read_json
from stdo.priors import FACTS, PRIORS_DIR, find_prior
from stdo.resample import as_nchw, upscale_bicubic
from stdo.runtimes import open_runner
from stdo.train.priordata import codec_round_trip
from stdo.train.validation import frames_psnr

OUT = results_dir("prior_gain")


def measure(clip: str, scale: int, codec: str, crfs: list[int], frames: int) -> list[dict]:
    data = load_clip(clip_path(clip), scale, Cut(frames=frames))
    facts = read_json(PRIORS_DIR / FACTS)[find_prior("wdsr_a_mobile", scale).name]
    files = {b["precision"]: PRIORS_DIR / b["path"] for b in facts["bases"] if b["format"] == "onnx"}
    runners = {p: open_runner("onnx", path) for p, path in files.items()}
    rows = []
    for crf in crfs:
        lr = codec_round_trip(data.lr, crf, codec)
        bicubic = frames_psnr(data.hr, lr, lambda x: upscale_bicubic(x, scale) / 255, scale)
        row = {"clip": clip, "scale": scale, "codec": codec, "crf": crf, "lr_size": list(lr.shape[2:0:-1]),
               "frames": len(lr), "bicubic": round(bicubic, 3)}
        for precision, runner in runners.items():
            score = frames_psnr(data.hr, lr, lambda x: runner(as_nchw(x).float() / 255), scale)
            row[precision] = round(score, 3)
            row[f"gain_{precision}"] = round(score - bicubic, 3)
        rows.append(row)
        print(row, flush=True)
    return rows


def curves(state: Path, work: Path, int8_points: int) -> dict:
    """Each prior's validation curve {scale: [(step, fp32 gain, int8 gain or None)]} from the training state in
    `state`; the int8 gain of about `int8_points` evenly spaced steps (and the last), when `work` holds the sets."""
    from stdo.export.bases import REFERENCE_WINDOW, _calibration
    from stdo.export.onnx import write_onnx
    from stdo.models import fold_weight_norm, load_wdsr
    from stdo.train.priorset import open_prior_set

    out = {}
    for path in sorted(state.glob("x*/.wdsr_a_mobile_x*.pt.curve/curve.json")):
        scale = int(path.parent.parent.name.removeprefix("x"))
        init = path.parent.parent / "init.json"
        offset = read_json(init)["steps"] if init.is_file() else 0  # the steps of the prior this run continued
        curve = read_json(path)
        points = curve["points"]
        measured = set()
        if int8_points and (work / "set-validation").is_dir():
            measured = {p["step"] for p in points[:: max(1, len(points) // int8_points)]} | {points[-1]["step"]}
            hr, lr, _ = open_prior_set(work / "set-validation", scale)
            calibration = _calibration(open_prior_set(work / "set-train", scale)[1], REFERENCE_WINDOW)
        rows = []
        for p in points:
            int8 = None
            snapshot = path.parent / "snapshots" / f"step{p['step']:07d}.pt"
            if p["step"] in measured and snapshot.is_file():
                model = fold_weight_norm(load_wdsr(torch.load(snapshot, weights_only=True))).eval()
                with tempfile.TemporaryDirectory() as tmp:
                    onnx = Path(tmp) / "int8.onnx"
                    write_onnx(model, onnx, (REFERENCE_WINDOW,), "int8", calibration)
                    runner = open_runner("onnx", onnx)
                    int8 = frames_psnr(hr, lr, lambda x: runner(as_nchw(x).float() / 255), scale)
                print({"scale": scale, "step": offset + p["step"], "fp32": p["psnr"], "int8": int8}, flush=True)
            rows.append((offset + p["step"], round(p["gain"], 3),
                         None if int8 is None else round(int8 - curve["bicubic_psnr"], 3)))
        out[str(scale)] = rows
    return out


def markdown(rows: list[dict], curve: dict, args) -> str:
    lines = [f"# The shipped prior alone: gain over bicubic of the decoded LR stream ({platform.machine()})", "", f"Machine: {machine_line()}.", "",
             f"`python benchmarks/prior_gain.py --clips {args.clips} --scales {args.scales} --codecs {args.codecs} "
             f"--crfs {args.crfs} --frames {args.frames}`", "",
             "RGB PSNR (dB) against the HR frames over the first frames of each clip; LR by the shipped downscaler, "
             "coded at the CRF and decoded; the prior's carried ONNX files on whole frames. None of these clips is in "
             "the prior's content (stdo/priors/priors.json).", "",
             "| clip | scale | codec | CRF | LR | bicubic | prior fp32 | gain fp32 | prior int8 | gain int8 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | x{r['scale']} | {r['codec']} | {r['crf']} | {r['lr_size'][0]}x{r['lr_size'][1]} "
                     f"| {r['bicubic']:.2f} | {r['fp32']:.2f} | {r['gain_fp32']:+.2f} | {r['int8']:.2f} "
                     f"| {r['gain_int8']:+.2f} |")
    for scale in sorted({r["scale"] for r in rows}):
        for precision in ("fp32", "int8"):
            gains = [r[f"gain_{precision}"] for r in rows if r["scale"] == scale]
            lines.append(f"\nx{scale} {precision}: mean gain {np.mean(gains):+.2f} dB, lowest {min(gains):+.2f} dB "
                         f"over {len(gains)} clip x codec x CRF points")
    if curve:
        lines += ["", "## Validation curve: gain over bicubic on the held-out photographs (mixed codecs and CRFs)", "",
                  "Steps from the start of the recipe; int8 where measured (the carried file's quantization).", "",
                  "| scale | step | fp32 | int8 |", "|---|---|---|---|"]
        for scale, points in curve.items():
            for step, fp32, int8 in points:
                if int8 is not None:
                    lines.append(f"| x{scale} | {step} | {fp32:+.3f} | {int8:+.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="bikes,bigbuckbunny,carphone")
    parser.add_argument("--scales", default="4,2")
    parser.add_argument("--codecs", default="h264")
    parser.add_argument("--crfs", default="23,27,31")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--out", type=Path, default=OUT, help="Results folder.")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "stdo-prior",
                        help="The prior recipe's folder (make prior's PRIOR_WORK): the sets the int8 curve needs.")
    parser.add_argument("--state", type=Path, default=Path(__file__).parent.parent / "prior-state",
                        help="The priors' training state (make prior's PRIOR_STATE): the validation curves.")
    parser.add_argument("--int8-points", type=int, default=8, help="Steps of each curve measured in int8 (0: none).")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [row for clip in args.clips.split(",") for scale in map(int, args.scales.split(","))
            for codec in args.codecs.split(",")
            for row in measure(clip, scale, codec, [int(c) for c in args.crfs.split(",")], args.frames)]
    curve = curves(args.state, args.work, args.int8_points)
    write_results(args.out, "prior_gain", {"machine": machine_line(), "rows": rows, "validation_curves": curve},
                  markdown(rows, curve, args))


if __name__ == "__main__":
    main()
