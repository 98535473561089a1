"""What stdo-play reports of a playback: the text table, the markdown report and the PSNR plot, from the report
dict `stdo.play.pipeline.play` returns (the player itself only yields frames)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stdo.bundle import CLIENT_OF_FORMAT
from stdo.stream import CODECS


def format_table(report: dict) -> list[str]:
    """Speed, where the time went, and PSNR as aligned text lines."""
    s = report["seconds"]
    plan = report["plan"]
    served = (f"{report['models']} model(s)  plan {plan['runs_per_frame']:.1f} runs/frame, "
              f"{plan['pixels_run_per_needed']:.2f}x the frame's pixels") if plan else _plain(report)
    lines = [f"{report['frames']} frames  {report['fps']:.2f} fps  backend {report['backend']} {report['precision']}  "
             + served,
             "time     " + "  ".join(f"{k} {s[k]:.2f} s ({100 * s[k] / max(s['playback'], 1e-9):.0f}%)"
                                    for k in ("decode", "inference", "stitch", "encode"))]
    if "psnr" in report:
        p = report["psnr"]
        lines.append(f"RGB PSNR model {p['model']:.3f} dB  bicubic {p['bicubic']:.3f} dB  "
                     f"gain {p['model'] - p['bicubic']:+.3f} dB" + (
                         f"  prior alone {p['prior']:.3f} dB (update {p['model'] - p['prior']:+.3f} dB)"
                         if "prior" in p else ""))
        lines.append(f"Y-PSNR   model {p['model_y']:.3f} dB  bicubic {p['bicubic_y']:.3f} dB  "
                     f"gain {p['model_y'] - p['bicubic_y']:+.3f} dB")
        lines.append(f"SSIM     model {p['model_ssim']:.4f}  bicubic {p['bicubic_ssim']:.4f}")
    if "delivery" in report:
        lines.append(delivery_line(report))
        if report["delivery"].get("clients"):
            lines.append(clients_line(report))
    return lines


def _plain(report: dict) -> str:
    """What a bundle without models plays."""
    return "no model: the HR stream as decoded" if report["scale"] == 1 else "no model: bicubic upsampling"


def delivery_line(report: dict) -> str:
    """The bundle's bytes beside each HR stream's at the models' PSNR."""
    d = report["delivery"]
    b = d["bundle"]
    streams = []
    for codec, hr in d["hr"].items():
        h = hr["point"]
        reached = "reaches" if h["psnr"] >= report["psnr"]["model"] else "falls short of"
        same = "" if hr["same_psnr"] is None else f", {hr['bytes_ratio_same_psnr']:.2f}x at the same PSNR"
        streams.append(f"HR {CODECS[codec].label} crf {h['crf']} {h['bytes']:,} ({h['psnr']:.3f} dB, "
                       f"{reached} the model's): {hr['bytes_ratio']:.2f}x{same}")
    return (f"bytes    bundle {b['total']:,} (video {b['video']:,} + models {b['models']:,} + model map "
            f"{b['model_map']:,})  vs  " + "; ".join(streams))


def clients_line(report: dict) -> str:
    """Each client variant's download beside the HR streams of the played PSNR."""
    parts = []
    for name, c in report["delivery"]["clients"].items():
        ratios = ", ".join(f"{r:.2f}x {CODECS[codec].label}" for codec, r in c["vs_hr"].items())
        parts.append(f"{name} {c['total']:,} ({ratios})")
    return "clients  " + " · ".join(parts) + "  (each against the HR streams at the PSNR played here)"


def format_markdown(report: dict) -> str:
    s = report["seconds"]
    out = [f"# stdo-play: {report['bundle']}", "",
           f"{report['frames']} frames, {report['lr_size'][0]}x{report['lr_size'][1]} -> "
           f"{report['hr_size'][0]}x{report['hr_size'][1]} (x{report['scale']}), backend {report['backend']} "
           f"{report['precision']}, {_plain(report) if report['plan'] is None else str(report['models']) + ' model(s)'}: "
           f"**{report['fps']:.2f} fps**.", "",
           "| stage | seconds | share |", "|---|---|---|"]
    out += [f"| {k} | {s[k]:.2f} | {100 * s[k] / max(s['playback'], 1e-9):.0f}% |"
            for k in ("decode", "inference", "stitch", "encode")]
    if "psnr" in report:
        p = report["psnr"]
        out += ["", "| | RGB PSNR (dB) | Y-PSNR (dB) | SSIM |", "|---|---|---|---|",
                f"| bicubic | {p['bicubic']:.3f} | {p['bicubic_y']:.3f} | {p['bicubic_ssim']:.4f} |",
                f"| stdo ({report['backend']} {report['precision']}) | {p['model']:.3f} | {p['model_y']:.3f} | "
                f"{p['model_ssim']:.4f} |",
                f"| gain | {p['model'] - p['bicubic']:+.3f} | {p['model_y'] - p['bicubic_y']:+.3f} | "
                f"{p['model_ssim'] - p['bicubic_ssim']:+.4f} |"]
    if "delivery" in report:
        d = report["delivery"]
        b = d["bundle"]
        out += ["", "| delivered | bytes | RGB PSNR (dB) | Y-PSNR (dB) | SSIM |", "|---|---|---|---|---|",
                f"| stdo bundle (LR video {b['video']:,} + models {b['models']:,} + model map {b['model_map']:,}) | "
                f"{b['total']:,} | {p['model']:.3f} | {p['model_y']:.3f} | {p['model_ssim']:.4f} |"]
        for codec, hr in d["hr"].items():
            h, name = hr["point"], CODECS[codec].label
            out += [f"| HR {name} yuv420p, crf {h['crf']} (the largest CRF reaching that RGB PSNR) | {h['bytes']:,} | "
                    f"{h['psnr']:.3f} | {h['psnr_y']:.3f} | {h['ssim']:.4f} |",
                    f"| bundle / HR {name} | {hr['bytes_ratio']:.2f}x | | | |"]
            if hr["same_psnr"] is not None:
                out += [f"| HR {name} interpolated to the same RGB PSNR (log-bytes between the CRFs around it) | "
                        f"{hr['same_psnr']:,.0f} | {p['model']:.3f} | | |",
                        f"| bundle / HR {name} at the same PSNR | {hr['bytes_ratio_same_psnr']:.2f}x | | | |"]
        clients = d.get("clients") or {}
        if clients:
            codecs = list(d["hr"])
            out += ["", "What each client downloads, against the HR streams of the PSNR played here (each variant's own "
                    "PSNR is in the bundle's report.md):", "",
                    "| variant | client | video | models | model map | total bytes | "
                    + " | ".join(f"/ HR {CODECS[c].label}" for c in codecs) + " |",
                    "|---|---|---|---|---|---|" + "---|" * len(codecs)]
            for name, c in clients.items():
                out.append(f"| {name} | {CLIENT_OF_FORMAT[name.split()[0]]} | {c['video']:,} | {c['models']:,} | "
                           f"{c['model_map']:,} | {c['total']:,} | "
                           + " | ".join(f"{c['vs_hr'][k]:.2f}x" for k in codecs) + " |")
    return "\n".join(out) + "\n"


def plot_psnr(report: dict, path: Path) -> None:
    """PNG of PSNR per frame: bicubic vs the bundle's models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stdo.fileio import atomic_path

    p = report["psnr"]
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=120)
    x = np.arange(1, len(p["per_frame"]) + 1)
    ax.plot(x, p["bicubic_per_frame"], label=f"bicubic ({p['bicubic']:.2f} dB)", color="tab:gray")
    ax.plot(x, p["per_frame"], label=f"stdo, {report['models']} model(s) ({p['model']:.2f} dB)", color="tab:blue")
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"x{report['scale']}, {report['backend']} {report['precision']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
