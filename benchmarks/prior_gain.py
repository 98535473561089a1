"""The shipped prior alone, as a client runs it when a video ships nothing else: its gain over bicubic of the same
decoded LR stream, per clip, scale, codec and CRF, for the files clients carry (ONNX fp32 and int8).

For each real clip (none of which the prior was trained on: its facts list its content): the first --frames HR
frames, LR made by the shipped downscaler and coded by the LR codec at each CRF (what stdo-cluster ships), decoded
as a client decodes it; then bicubic, and the prior's carried ONNX files on whole decoded frames. RGB PSNR against
the HR frames, a border of `scale` pixels shaved, over all frames. Also the validation curve of each prior (its
held-out photographs, from the recipe's folder, when it is on this machine). Writes results/prior_gain/.

    python benchmarks/prior_gain.py --clips bikes,bigbuckbunny,carphone --scales 4,2 --crfs 23,27,31 --frames 60
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from results_io import write_results
from stdo.clip import load_clip
from stdo.clips import clip_path
from stdo.fileio import read_json
from stdo.priors import FACTS, PRIORS_DIR, find_prior
from stdo.resample import as_nchw, upscale_bicubic
from stdo.runtimes import open_runner
from stdo.train.priordata import codec_round_trip
from stdo.train.validation import frames_psnr

OUT = Path(__file__).parent / "results" / "prior_gain"


def measure(clip: str, scale: int, codec: str, crfs: list[int], frames: int) -> list[dict]:
    data = load_clip(clip_path(clip), scale, count=frames)
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


def curves(work: Path) -> dict:
    """Each prior's validation curve (step, gain over bicubic) from the recipe's folder, if present."""
    out = {}
    for path in sorted(work.glob("x*/.wdsr_a_mobile_x*.pt.curve/curve.json")):
        curve = json.loads(path.read_text())
        out[path.parent.name.split("_x")[1].split(".")[0]] = [(p["step"], round(p["gain"], 3)) for p in curve["points"]]
    return out


def markdown(rows: list[dict], curve: dict, args) -> str:
    lines = [f"# The shipped prior alone: gain over bicubic of the decoded LR stream ({platform.machine()})", "",
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
        lines += ["", "## Validation curve (held-out photographs, mixed codecs and CRFs, fp32): step, gain over bicubic",
                  ""]
        for scale, points in curve.items():
            lines.append(f"- x{scale}: " + ", ".join(f"{s}: {g:+.3f}" for s, g in points[:: max(1, len(points) // 12)]
                                                     + ([points[-1]] if len(points) % 12 else [])))
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
                        help="The prior recipe's folder (make prior's PRIOR_WORK), for the validation curves.")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [row for clip in args.clips.split(",") for scale in map(int, args.scales.split(","))
            for codec in args.codecs.split(",")
            for row in measure(clip, scale, codec, [int(c) for c in args.crfs.split(",")], args.frames)]
    curve = curves(args.work)
    write_results(args.out, "prior_gain", {"machine": platform.machine(), "rows": rows, "validation_curves": curve},
                  markdown(rows, curve, args))


if __name__ == "__main__":
    main()
