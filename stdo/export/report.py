"""stdo-export's report as people read it: the terminal table, the update decisions' line, report.md."""

from __future__ import annotations

from stdo import bundle as bundle_format
from stdo.runtimes import FORMATS as RUNTIME_FORMATS


def format_table(report: dict) -> list[str]:
    """The verification table as aligned text lines (terminal and markdown share the figures)."""
    v = report["video"]
    lines = [f"LR stream {v['codec']} {v['profile']} {v['pix_fmt']} {v['matrix']} {v['range']}  {v['bytes']:,} bytes  "
             f"{v['bitrate_kbps']:.1f} kbit/s (the RUN's, byte for byte)",
             f"{'format':8}{'precision':>10}{'KiB':>9}{'vs torch dB':>13}{'RGB vs HR':>11}{'Y vs HR':>9}{'delta':>8}"
             f"{'ms/window':>11}  target"]
    for r in report["artifacts"]:
        ms = f"{r['ms_per_window']:.2f}" if RUNTIME_FORMATS[r["format"]].runs_here else "-"
        lines.append(f"{r['format']:8}{r['precision']:>10}{r['bytes'] / 1024:9.1f}{r['psnr_vs_torch']:13.2f}"
                     f"{r['psnr_vs_hr']:11.3f}{r['psnr_y_vs_hr']:9.3f}{r['delta_vs_torch_fp32']:+8.3f}{ms:>11}  "
                     f"{r['target']}")
    return lines


def updates_line(updates: dict) -> str:
    """Which trained models ship their update and which the prior serves, with what each would add for its bytes."""
    def model(d: dict) -> str:
        return f"{d['model']} ({d['gain_db']:+.3f} dB for {d['update_bytes']:,} B)"

    shipped = [model(d) for d in updates["models"] if d["pays"]]
    served = [model(d) for d in updates["models"] if not d["pays"]]
    return (f"updates  at {updates['db_per_kb']:.3g} dB/KiB: shipped {', '.join(shipped) or 'none'}; served by the "
            f"prior {', '.join(served) or 'none'}")


def format_report_md(report: dict) -> str:
    head = (f"# stdo bundle: {report['method']}, x{report['scale']}, {report['models']} model(s), "
            f"window {report['window'][1]}x{report['window'][0]}\n\n"
            f"Verified on {report['verify_frames']} frames. torch fp32 models: {report['torch_fp32_psnr_hr']:.3f} dB "
            f"against HR (training report, all frames: {report['train_psnr_video']}; bicubic "
            f"{report['bicubic_psnr_video']}).\n\n")
    plan = report["plan"]
    check = plan["margin_check"]
    how = (f"measured: the least margin within {check['tolerance']:g} of the exact frames' error against HR; tried "
           + ", ".join(f"{c['margin']} (MSE {c['mse_vs_exact']:.2g})" for c in check["checks"])
           + f"; receptive radius {check['receptive_radius']}") if check else "given"
    head += (f"Inference plan: margin {plan['margin']} ({how}), shapes {plan['shapes']}, "
             f"{plan['runs_per_frame']:.1f} runs per frame, {plan['pixels_run_per_needed']:.2f}x the frame's pixels, "
             f"{plan['frame_plans']} distinct frame plans.\n\n")
    v = report["video"]
    head += (f"LR stream: {v['codec']} {v['profile']}, {v['pix_fmt']}, {v['matrix']} {v['range']} range, "
             f"{v['bytes']:,} bytes, {v['bitrate_kbps']:.1f} kbit/s, sha256 {v['sha256'][:16]}... (the RUN's own).\n\n")
    cols = ["format", "precision", "bytes", "PSNR vs torch (dB)", "RGB PSNR vs HR (dB)", "Y-PSNR vs HR (dB)",
            "vs fp32 torch (dB)", "ms per window", "target", "checked by"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in report["artifacts"]:
        ms = f"{r['ms_per_window']:.2f}" if RUNTIME_FORMATS[r["format"]].runs_here else "n/a (runtime not here)"
        lines.append(f"| {r['format']} | {r['precision']} | {r['bytes']:,} | {r['psnr_vs_torch']:.2f} | "
                     f"{r['psnr_vs_hr']:.3f} | {r['psnr_y_vs_hr']:.3f} | {r['delta_vs_torch_fp32']:+.3f} | {ms} | {r['target']} | {r['checked_by']} |")
    lines += ["", "What each client downloads for the clip (LR stream + its variant's model files or updates + model map):",
              "", "| variant | client | video | models | model map | total bytes |", "|---|---|---|---|---|---|"]
    for name, b in report.get("clients", {}).items():
        mark = " (recommended)" if report.get("recommended") and name == " ".join(report["recommended"].values()) else ""
        lines.append(f"| {name}{mark} | {bundle_format.CLIENT_OF_FORMAT[name.split()[0]]} | {b['video']:,} | "
                     f"{b['models']:,} | {b['model_map']:,} | {b['total']:,} |")
    updates = report.get("updates")
    if updates:
        served = [str(d["model"]) for d in updates["models"] if not d["pays"]]
        lines += ["", f"Which updates pay (at least {updates['db_per_kb']:g} dB of the clip's PSNR over the prior alone "
                  "per KiB, measured on the decoded LR stream; "
                  + (f"model(s) {', '.join(served)} served by the prior clients carry" if served else "all shipped")
                  + "):", "", "| trained model | patches | gain over the prior (dB) | update bytes | pays |",
                  "|---|---|---|---|---|"]
        lines += [f"| {d['model']} | {d['patches']:,} | {d['gain_db']:+.4f} | {d['update_bytes']:,} | "
                  f"{'yes' if d['pays'] else 'no'} |" for d in updates["models"]]
    notes = ("\n\nfp32 target: at least 100 dB against torch. int8 target: at most 0.3 dB below fp32 torch against HR. "
             "CoreML runs only on Apple devices: here its spec is checked and its decompressed weights run in torch.\n")
    return head + "\n".join(lines) + notes
