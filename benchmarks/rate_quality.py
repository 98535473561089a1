"""Bytes delivered vs quality against the original HR frames: does a bundle beat sending more video bits?

For each clip, scale and codec (H.264, HEVC), the ways a user could deliver the clip:
  HR <codec>            the HR frames at a ladder of CRFs: plain streaming, what users ship today;
  LR + bicubic          the LR stream (same codec) at a ladder of CRFs, upscaled by bicubic on the client;
  LR + prior            the same LR streams upscaled by the shipped prior alone (int8 ONNX, the file every client
                        carries): no per-video bytes at all (the ViSOR-style baseline);
  LR + stdo scratch     per-chunk models trained from scratch, shipped whole (int8 ONNX);
  LR + stdo / jstdo     per-chunk models (stdo) or one joint model (jstdo) trained from the prior (--tune
                        channels), shipped as coded updates against the carried prior's files.
Bytes = what a client downloads: LR video + model files or updates + chunk map (clients derive the plan from it);
the prior is carried like the codec and not counted. Quality: RGB PSNR, Y-PSNR, SSIM of the played frames against the
original HR (border shave = scale, mean over frames). Every method trains on the decoded LR stream of its point.

The prior never saw these clips: it was trained on the photographs stdo/priors/content.json lists (its facts in
stdo/priors/priors.json), which is stricter than leave-one-out over the benchmark clips.

The scale chosen with the operating point (stdo-deliver --scale 4,2,1): per clip and codec, the best played
PSNR any measured point (any scale, any delivery, or the HR stream itself) gives within each budget, and the
BD-rates of the cheapest curve at each PSNR against the HR ladder and against each fixed scale's cheapest curve.

BD-rate against the HR ladder of the same codec uses the `bjontegaard` package (Akima interpolation over the PSNR
range both curves cover; the overlap is reported beside it). "stdo / jstdo against LR + prior alone": the BD-rate of
the prior plus its coded per-video update against the prior alone, whether the update pays for its bytes.

    python benchmarks/rate_quality.py --clips bikes --scales 4,2 --codecs h264,hevc --frames 250 --steps 400
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from stdo.clips import clip_path
from stdo.cluster.pipeline import ClusterOptions, cluster
from stdo.export.pipeline import ExportOptions, export
from stdo.play.player import Player, lr_stream
from stdo.priors import PRIORS_DIR, find_prior, prior_bases
from stdo.fileio import sha256_of
from stdo.ratequality import hr_stream_point, quality
from stdo.rundir import LR_STREAM
from stdo.stream import StreamOptions
from stdo.train.loop import TrainConfig
from stdo.train.methods import MethodOptions
from stdo.train.pipeline import TrainOptions, train
from stdo.clip import Crop
from stdo.resample import upscale_bicubic
from results_io import machine_line, results_dir, write_results

GRIDS = {2: (20, 10), 4: (10, 5)}
CROPS = {"bikes": Crop(640, 272), "bigbuckbunny": Crop(640, 360, 320, 180)}
# name -> (method, --init): what each row trains
METHODS = {"stdo-scratch": ("stdo", "scratch"), "stdo": ("stdo", "prior"), "jstdo": ("jstdo", "prior")}
LR_CRFS = {"h264": "23,29,35", "hevc": "25,31,37"}


def bicubic_frames(lr: np.ndarray, scale: int):
    for frame in lr:
        yield upscale_bicubic(frame[None], scale)[0].byte().permute(1, 2, 0).numpy()


def prior_frames(lr: np.ndarray, scale: int):
    """The LR frames upscaled whole by the carried prior's int8 ONNX file (what a client holds without any bundle)."""
    import onnxruntime as ort

    prior = find_prior("wdsr_a_mobile", scale)
    base = next(b for b in prior_bases(sha256_of(prior), PRIORS_DIR) if (b["format"], b["precision"]) == ("onnx", "int8"))
    session = ort.InferenceSession(str(PRIORS_DIR / base["path"]), providers=["CPUExecutionProvider"])
    for frame in lr:
        x = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], np.float32) / 255
        (sr,) = session.run(["sr"], {"lr": x})
        yield np.clip(np.rint(sr[0] * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def client_bytes(report: dict) -> dict[str, int]:
    """What each int8 client of an export's bundle downloads in all ("onnx int8": web / onnxruntime, "tflite int8":
    Android / LiteRT, "coreml int8": iOS): the bytes the played ONNX point counts, for every platform."""
    return {label: b["total"] for label, b in report["clients"].items() if label.endswith(" int8")}


def prior_clients(run: Path, formats: tuple[str, ...]) -> dict[str, int]:
    """Each client's download for the prior alone shipped as a bundle (stdo-export --method prior): the LR stream,
    and the carried files as they are (ONNX, CoreML: any window) or converted for the plan's window shapes
    (TFLite)."""
    train(TrainOptions(run=run, method="prior", restart=True, evaluate=False))
    return client_bytes(export(ExportOptions(run=run, method="prior", format=formats, quantize=("int8",),
                                             out=run / "bundle-prior", verify_frames=1)))


def method_point(run: Path, name: str, steps: int, hr: np.ndarray, scale: int, formats: tuple[str, ...]) -> dict:
    method, init = METHODS[name]
    t0 = time.perf_counter()
    train(TrainOptions(run=run, method=method, config=TrainConfig(steps=steps), restart=True, evaluate=False,
                       method_options=MethodOptions(init=init)))
    out = run / f"bundle-{name}"
    report = export(ExportOptions(run=run, method=method, format=formats, quantize=("int8",), out=out,
                                  verify_frames=4))
    player = Player(out, backend="onnxruntime", precision="int8")
    frames = (sr for _, _, sr in player.play(lr_stream(player)))
    rgb, y, s = quality(frames, hr, scale)
    sizes = player.delivered_bytes
    return {"bytes": sizes["total"], "video_bytes": sizes["video"], "model_bytes": sizes["models"],
            "map_bytes": sizes["model_map"], "psnr": rgb, "psnr_y": y, "ssim": s, "clients": client_bytes(report),
            "seconds": time.perf_counter() - t0}


def hr_bytes_at(hr_curve: list[dict], target: float) -> float | None:
    """A curve's bytes (the HR ladder's, or the prior alone's) at `target` RGB PSNR, interpolated in log-bytes;
    None outside it."""
    points = sorted(hr_curve, key=lambda p: p["psnr"])
    ps, logb = [p["psnr"] for p in points], [np.log(p["bytes"]) for p in points]
    if not ps[0] <= target <= ps[-1]:
        return None
    return float(np.exp(np.interp(target, ps, logb)))


def bd_rates(anchor: list[dict], test: list[dict]) -> dict:
    import bjontegaard as bd

    out = {}
    for metric in ("psnr", "psnr_y"):
        # each curve as the best `metric` its bytes buy (a curve chosen on RGB PSNR need not rise in Y-PSNR)
        a_rate, a_q = zip(*((p["bytes"], p[metric]) for p in staircase(anchor, metric)))
        t_rate, t_q = zip(*((p["bytes"], p[metric]) for p in staircase(test, metric)))
        lo, hi = max(min(a_q), min(t_q)), min(max(a_q), max(t_q))
        overlap = max(hi - lo, 0) / (max(max(a_q), max(t_q)) - min(min(a_q), min(t_q)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = bd.bd_rate(a_rate, a_q, t_rate, t_q, method="akima", require_matching_points=False,
                               min_overlap=0) if len(t_q) >= 2 and overlap > 0 else float("nan")
        out[metric] = {"bd_rate_percent": None if np.isnan(value) else float(value), "overlap": overlap,
                       "psnr_range": [lo, hi]}
    return out


def envelope(curves: list[list[dict]], metric: str, samples: int = 64) -> list[dict]:
    """The cheapest of `curves` at each quality: each curve's log-bytes interpolated linearly in `metric` over its
    own range, the least at each of `samples` qualities across their union. A delivery that can take any CRF
    (stdo-deliver fills the budget) has each curve's points between the CRFs measured, so this, not the measured
    points' staircase, is what choosing among the curves buys."""
    rising = [staircase(c, metric) for c in curves]
    rising = [c for c in rising if len(c) >= 2]
    lo, hi = min(c[0][metric] for c in rising), max(c[-1][metric] for c in rising)
    out = []
    for q in np.linspace(lo, hi, samples):
        logs = [np.interp(q, [p[metric] for p in c], np.log([p["bytes"] for p in c])) for c in rising
                if c[0][metric] <= q <= c[-1][metric]]
        out.append({"bytes": float(np.exp(min(logs))), metric: float(q)})
    return out


def envelope_bd_rates(anchor: list[list[dict]], test: list[list[dict]]) -> dict:
    """bd_rates between the envelopes of two sets of curves, per metric."""
    out = {}
    for metric in ("psnr", "psnr_y"):
        other = "psnr_y" if metric == "psnr" else "psnr"
        a = [{**p, other: p[metric]} for p in envelope(anchor, metric)]  # bd_rates reads both metrics
        t = [{**p, other: p[metric]} for p in envelope(test, metric)]
        out[metric] = bd_rates(a, t)[metric]
    return out


def run_clip(clip: str, scale: int, codec: str, args, work: Path) -> dict:
    source = clip_path(clip)
    results: dict = {"clip": clip, "scale": scale, "codec": codec, "crop": str(CROPS[clip]), "lr": []}
    hr = None
    for crf in (int(c) for c in (args.lr_crfs or LR_CRFS[codec]).split(",")):
        run = work / f"{clip}-x{scale}-{codec}-crf{crf}"
        summary = cluster(ClusterOptions(source=source, run=run, scale=scale, grid=GRIDS[scale], chunks=args.chunks,
                                         frames=args.frames, crop=CROPS[clip], stream=StreamOptions(codec=codec, crf=crf),
                                         overwrite=True))
        hr = np.load(run / "frames/hr.npy")
        lr = np.load(run / "frames/lr.npy")
        fps = json.loads((run / "run.json").read_text())["frames"]["fps"]
        video_bytes = (run / LR_STREAM).stat().st_size
        point = {"crf": crf, "video_bytes": video_bytes}
        for name, frames in (("bicubic", bicubic_frames(lr, scale)), ("prior", prior_frames(lr, scale))):
            rgb, y, s = quality(frames, hr, scale)
            point[name] = {"bytes": video_bytes, "video_bytes": video_bytes, "model_bytes": 0, "map_bytes": 0,
                           "psnr": rgb, "psnr_y": y, "ssim": s}
        point["prior"]["clients"] = prior_clients(run, args.formats)
        for name in args.methods:
            point[name] = method_point(run, name, args.steps, hr, scale, args.formats)
            print(f"{clip} x{scale} {codec} LR crf {crf}: {name} {point[name]['psnr']:.3f} dB "
                  f"{point[name]['bytes']:,} B (prior {point['prior']['psnr']:.3f} dB, bicubic "
                  f"{point['bicubic']['psnr']:.3f} dB, {video_bytes:,} B)", flush=True)
        results["lr"].append(point)
        results["frames"] = summary.frames
        results["duration_s"] = summary.frames / fps
        results["fps"] = fps
    results["hr"] = [hr_stream_point(lambda: iter(hr), results["fps"], StreamOptions(codec=codec, crf=c), scale).to_dict()
                     for c in (int(c) for c in args.hr_crfs.split(","))]
    for name in ("bicubic", "prior", *args.methods):
        results.setdefault("bd_rate", {})[name] = bd_rates(results["hr"], [p[name] for p in results["lr"]])
        for p in results["lr"]:
            p[name]["hr_bytes_same_psnr"] = hr_bytes_at(results["hr"], p[name]["psnr"])
    add_update_rows(results)
    return results


def add_update_rows(results: dict) -> None:
    """Each from-prior method's BD-rate against the prior alone: whether its per-video update pays for its bytes."""
    for name in ("stdo", "jstdo"):
        if all(name in p for p in results["lr"]):
            results["bd_rate"][f"{name} vs prior alone"] = bd_rates([p["prior"] for p in results["lr"]],
                                                                    [p[name] for p in results["lr"]])


def chooser(all_results: list[dict]) -> list[dict]:
    """stdo-deliver's choice at every budget, per clip and codec: of every point measured at any scale (each LR
    stream alone by bicubic, with the prior, with each method) and of the HR ladder (scale 1), the best RGB PSNR
    within the budget. Its curve is the points that beat every cheaper one (the upper staircase); beside it, each
    fixed scale's own staircase and the BD-rates of the chooser against them and against the HR ladder."""
    out = []
    for clip, codec in dict.fromkeys((r["clip"], r["codec"]) for r in all_results):
        configs = [r for r in all_results if (r["clip"], r["codec"]) == (clip, codec)]
        hr = [{**p, "rung": "HR", "delivery": f"HR {codec}"} for p in configs[0]["hr"]]
        by_scale = {r["scale"]: [{**p[name], "crf": p["crf"], "rung": f"x{r['scale']}", "delivery": f"LR + {name}"}
                                 for p in r["lr"] for name in p if isinstance(p[name], dict)] for r in configs}
        curve = staircase([point for points in by_scale.values() for point in points] + hr)
        curves = {r["scale"]: [[p[name] for p in r["lr"]] for name in _deliveries(r)] for r in configs}
        every = [c for cs in curves.values() for c in cs] + [hr]
        result = {"clip": clip, "codec": codec, "scales": sorted(by_scale, reverse=True), "curve": curve,
                  "bd_rate": {f"HR {codec}": envelope_bd_rates([hr], every)}}
        for scale, scale_curves in sorted(curves.items(), reverse=True):
            result["bd_rate"][f"x{scale} alone"] = envelope_bd_rates(scale_curves, every)
        ratios = [p["bytes"] / b for p in curve if p["rung"] != "HR" and (b := hr_bytes_at(hr, p["psnr"]))]
        result["max_bytes_vs_hr_same_psnr"] = max(ratios, default=None)
        out.append(result)
    return out


def staircase(points: list[dict], metric: str = "psnr") -> list[dict]:
    """The points no cheaper point matches in `metric`: the best quality each budget buys, cheapest first."""
    best, kept = -np.inf, []
    for p in sorted(points, key=lambda p: (p["bytes"], -p[metric])):
        if p[metric] > best:
            kept.append(p)
            best = p[metric]
    return kept


def _deliveries(result: dict) -> list[str]:
    """The LR deliveries a configuration measured: bicubic, the prior alone, then the methods it trained (a results
    file keeps configurations measured in separate runs, with different --methods)."""
    return ["bicubic", "prior", *(m for m in METHODS if m in result["lr"][0])]


def _bd_cells(bd: dict) -> str:
    """A BD-rate row's cells: RGB PSNR and Y-PSNR, each with the share of the PSNR range both curves cover."""
    cells = []
    for metric in ("psnr", "psnr_y"):
        v = bd[metric]["bd_rate_percent"]
        cells += ["no overlap" if v is None else f"{v:+.1f}%", f"{100 * bd[metric]['overlap']:.0f}%"]
    return " | ".join(cells)


def markdown(all_results: list[dict], args) -> str:
    lines = ["# Rate-quality: bytes delivered vs quality against the original HR", "",
             f"Machine: {machine_line()}. Every "
             f"method trained for {args.steps} optimizer steps in all ({args.chunks} chunks: stdo's per-chunk models "
             "split them), wdsr_a_mobile, on the decoded LR stream of its point; shipped as ONNX int8 (from the "
             "prior: coded updates) and played by stdo-play (onnxruntime). Bytes = LR video + model files or "
             "updates + chunk map; the prior, carried by every client, is not counted. Bytes per int8 client: what "
             "the same bundle costs a web / onnxruntime (onnx), Android LiteRT (tflite) and iOS CoreML (coreml) "
             "client (for the prior alone: the prior shipped as a bundle, TFLite converted for the plan's window "
             "shapes; configurations measured before it was listed leave it empty). "
             "Generated by benchmarks/rate_quality.py.", ""]
    for r in all_results:
        lines += [f"## {r['clip']} x{r['scale']}, {r['codec']} ({r['crop']}, {r['frames']} frames, "
                  f"{r['duration_s']:.2f} s)", "",
                  "| delivery | CRF | bytes | RGB PSNR | Y-PSNR | SSIM | HR bytes at that PSNR | prior alone's bytes "
                  "at that PSNR | bytes per int8 client |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for p in r["hr"]:
            lines.append(f"| HR {r['codec']} | {p['crf']} | {p['bytes']:,} | {p['psnr']:.3f} | {p['psnr_y']:.3f} | "
                         f"{p['ssim']:.4f} | | | |")
        prior_curve = [p["prior"] for p in r["lr"]]  # where an update stops paying: prior alone at its PSNR costs less
        for p in r["lr"]:
            for name in _deliveries(r):
                m = p[name]
                hr_b = "outside the HR ladder" if m["hr_bytes_same_psnr"] is None else f"{m['hr_bytes_same_psnr']:,.0f}"
                models = f" (models {m['model_bytes']:,})" if m["model_bytes"] else ""
                alone = hr_bytes_at(prior_curve, m["psnr"]) if name in ("stdo", "jstdo") else None
                alone_b = "" if name not in ("stdo", "jstdo") else "above its range" if alone is None else f"{alone:,.0f}"
                clients = " · ".join(f"{label.split()[0]} {total:,}" for label, total in m.get("clients", {}).items())
                lines.append(f"| LR + {name} | {p['crf']} | {m['bytes']:,}{models} | {m['psnr']:.3f} | "
                             f"{m['psnr_y']:.3f} | {m['ssim']:.4f} | {hr_b} | {alone_b} | {clients} |")
        lines += ["", f"| BD-rate against HR {r['codec']} | RGB PSNR | overlap | Y-PSNR | overlap |",
                  "|---|---|---|---|---|"]
        for name, bd in r["bd_rate"].items():
            label = (f"{name.removesuffix(' vs prior alone')} against LR + prior alone" if name.endswith("prior alone")
                     else f"LR + {name}")
            lines.append(f"| {label} | {_bd_cells(bd)} |")
        lines.append("")
    for c in chooser(all_results):
        lines += [f"## The scale chosen with the operating point: {c['clip']}, {c['codec']}", "",
                  f"stdo-deliver's rungs here: {', '.join(f'x{s}' for s in c['scales'])} and the HR stream itself. "
                  "At each budget it keeps the best played PSNR of any point that fits; these are the points that "
                  "beat every cheaper one. Its BD-rates (below the table) compare envelopes: at each PSNR the cheapest "
                  "of the deliveries' curves, each interpolated between its CRFs, as stdo-deliver can take any CRF "
                  "(it fills the budget).", "",
                  "| bytes | RGB PSNR | rung | delivery | CRF |", "|---|---|---|---|---|"]
        lines += [f"| {p['bytes']:,} | {p['psnr']:.3f} | {p['rung']} | {p['delivery']} | {p['crf']} |"
                  for p in c["curve"]]
        worst = c["max_bytes_vs_hr_same_psnr"]
        lines += ["", f"Largest bytes ratio of a reduced-scale point on this curve to the HR {c['codec']} ladder at "
                  f"its PSNR: {'-' if worst is None else f'{worst:.2f}x'}.", "",
                  "| BD-rate of the chosen curve against | RGB PSNR | overlap | Y-PSNR | overlap |",
                  "|---|---|---|---|---|"]
        for name, bd in c["bd_rate"].items():
            lines.append(f"| {name} | {_bd_cells(bd)} |")
        lines.append("")
    lines.append("BD-rate: average bytes change at equal quality (negative = fewer bytes), over the PSNR range both "
                 "curves cover. A low overlap means the curves share little of their PSNR range.")
    return "\n".join(lines)


def plot(all_results: list[dict], args, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(5 * len(all_results), 4), dpi=110, squeeze=False)
    for ax, r in zip(axes[0], all_results):
        hr = sorted(r["hr"], key=lambda p: p["bytes"])
        ax.plot([p["bytes"] / 1024 for p in hr], [p["psnr"] for p in hr], "k-o", label=f"HR {r['codec']}")
        for name, style in (("bicubic", "--s"), ("prior", ":d"), *((m, "-^") for m in _deliveries(r)[2:])):
            pts = sorted((p[name] for p in r["lr"]), key=lambda p: p["bytes"])
            ax.plot([p["bytes"] / 1024 for p in pts], [p["psnr"] for p in pts], style,
                    label=f"LR + {name}")
        chosen = next(c for c in chooser(all_results) if (c["clip"], c["codec"]) == (r["clip"], r["codec"]))
        if len(chosen["scales"]) > 1 or chosen["curve"] != r["hr"]:
            ax.step([p["bytes"] / 1024 for p in chosen["curve"]], [p["psnr"] for p in chosen["curve"]], "r-",
                    where="post", linewidth=2.5, alpha=0.35, label="chosen (any scale, HR)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))  # 20, 50, 200, 500: no crowding        ax.set_xlabel("bytes delivered (KiB, log)")
        ax.set_ylabel("RGB PSNR vs HR (dB)")
        ax.set_title(f"{r['clip']} x{r['scale']} {r['codec']}, {r['frames']} frames")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="bikes,bigbuckbunny")
    parser.add_argument("--scales", default="4,2")
    parser.add_argument("--codecs", default="h264,hevc")
    parser.add_argument("--frames", type=int, default=250, help="250 = 10 s at 25 fps (a clip shorter is used whole)")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps per method, in all")
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--lr-crfs", help=f"LR CRFs [default: {LR_CRFS}]")
    parser.add_argument("--hr-crfs", default=",".join(map(str, range(18, 51, 2))),
                        help="the HR ladder; dense, as stdo-deliver searches the HR stream's CRF to the budget")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"of {', '.join(METHODS)}")
    parser.add_argument("--format", default="onnx,tflite,coreml",
                        help="the clients whose downloads each point lists (int8 of each format; ONNX is played)")
    parser.add_argument("--out", type=Path, default=results_dir("rate_quality"))
    parser.add_argument("--report-only", action="store_true",
                        help="write the markdown and plot from OUT/rate_quality.json (the configurations measured so far)")
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    args.formats = tuple(f for f in args.format.split(",") if f)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "rate_quality.json"
    # Results are kept per (clip, scale, codec): a run replaces what it measures and keeps the rest, so the
    # configurations can be measured in separate runs.
    all_results = json.loads(results_file.read_text()) if results_file.exists() else []
    if not args.report_only:
        with tempfile.TemporaryDirectory(prefix="stdo-rq-") as tmp:
            for clip in args.clips.split(","):
                for scale in (int(s) for s in args.scales.split(",")):
                    for codec in args.codecs.split(","):
                        result = run_clip(clip, scale, codec, args, Path(tmp))
                        all_results = [r for r in all_results
                                       if (r["clip"], r["scale"], r["codec"]) != (clip, scale, codec)] + [result]
                        tmp_file = results_file.with_suffix(".json.tmp")
                        tmp_file.write_text(json.dumps(all_results, indent=1))
                        tmp_file.replace(results_file)
    for result in all_results:
        result["bd_rate"].pop("stdo vs prior alone", None)
        add_update_rows(result)
    write_results(args.out, "rate_quality", all_results, markdown(all_results, args))
    plot(all_results, args, args.out / "rate_quality.png")


if __name__ == "__main__":
    main()
