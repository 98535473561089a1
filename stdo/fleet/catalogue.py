"""The results catalogue of a fleet run: DIR/catalogue.jsonl (the record), catalogue.csv (the same rows, flat),
summary.md and summary.png. Rows are rewritten atomically whenever a video finishes a stage, so a
killed driver loses nothing that finished and a rerun knows where every video stands.

A row: name, video, status (done | failed | partial), stage (the last one run), error, run_id, psnr,
psnr_bicubic, gain_db, bundle, bundle_bytes, <stage>_s and <stage>_node for each stage, options_key
(what the results depend on), finished (UTC), and `stages` (each stage's full record).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from stdo.errors import StdoError
from stdo.fileio import JSONUnreadable, parse_json, write_bytes
from stdo.fleet.jobs import VideoJob
from stdo.fleet.stages import STAGES

log = logging.getLogger(__name__)
CATALOGUE = "catalogue.jsonl"
FLAT_COLUMNS = ("name", "video", "status", "stage", "error", "run_id", "psnr", "psnr_bicubic", "gain_db", "bundle",
                "bundle_bytes", *(f"{s}_s" for s in STAGES), *(f"{s}_node" for s in STAGES), "options_key",
                "finished")


def load_catalogue(folder: Path) -> dict[str, dict]:
    """Rows by video name ({} for a new folder)."""
    path = Path(folder) / CATALOGUE
    if not path.exists():
        return {}
    rows = {}
    for line, text in enumerate(path.read_text().splitlines(), 1):
        try:
            row = parse_json(text)
            rows[row["name"]] = row
        except (JSONUnreadable, KeyError, TypeError):
            raise StdoError(f"{path}:{line} is not a catalogue row: move the file aside to start the catalogue "
                            "over") from None
    return rows


def save_catalogue(folder: Path, rows: dict[str, dict]) -> None:
    ordered = [rows[k] for k in sorted(rows)]
    write_bytes(Path(folder) / CATALOGUE, "".join(json.dumps(r) + "\n" for r in ordered).encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, FLAT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(ordered)
    write_bytes(Path(folder) / "catalogue.csv", text.getvalue().encode())


def make_row(job: VideoJob, stages: dict[str, dict]) -> dict:
    """A catalogue row from the records of the stages run so far (a failed one last)."""
    failed = next((r for r in stages.values() if "error" in r), None)
    done = all(s in stages and "error" not in stages[s] for s in STAGES)
    train, export = stages.get("train", {}), stages.get("export", {})
    row = {
        "name": job.name, "video": str(job.video),
        "status": "done" if done else "failed" if failed else "partial",
        "stage": list(stages)[-1] if stages else None, "error": failed["error"] if failed else None,
        "run_id": (stages.get("cluster") or {}).get("run_id"),
        "psnr": train.get("psnr"), "psnr_bicubic": train.get("psnr_bicubic"), "gain_db": train.get("gain_db"),
        "bundle": export.get("bundle"), "bundle_bytes": export.get("bundle_bytes"),
        **{f"{s}_s": (stages.get(s) or {}).get("seconds") for s in STAGES},
        **{f"{s}_node": (stages.get(s) or {}).get("node") for s in STAGES},
        "options_key": job.options_key(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stages": stages,
    }
    return row


def stages_to_keep(row: dict | None, job: VideoJob) -> dict[str, dict]:
    """The stage records of an earlier run that still hold: those before the first failed or missing stage,
    made with the same options and from the same clustering."""
    if not row or row.get("options_key") != job.options_key():
        return {}
    kept = {}
    for stage in STAGES:
        record = (row.get("stages") or {}).get(stage)
        if not record or "error" in record or record.get("run_id", row.get("run_id")) != row.get("run_id"):
            break
        kept[stage] = record
    return kept


def summary_markdown(rows: dict[str, dict]) -> str:
    ordered = [rows[k] for k in sorted(rows)]
    done = [r for r in ordered if r["status"] == "done"]
    failed = [r for r in ordered if r["status"] != "done"]
    lines = ["# stdo-fleet catalogue", "",
             f"{len(done)} of {len(ordered)} videos done, {len(failed)} not."]
    if done:
        gains = [r["gain_db"] for r in done]
        lines.append(f"Gain over bicubic: mean {sum(gains) / len(gains):+.3f} dB, min {min(gains):+.3f}, "
                     f"max {max(gains):+.3f}; bundles {sum(r['bundle_bytes'] for r in done):,} bytes in all; stage "
                     "seconds in all: " + ", ".join(f"{s} {sum(r[f'{s}_s'] for r in done):.1f}" for s in STAGES) + ".")
    lines += ["", "| video | status | PSNR dB | bicubic dB | gain dB | bundle bytes | "
              + " | ".join(f"{s} s" for s in STAGES) + " | node |", "|---|---|" + "---:|" * (4 + len(STAGES)) + "---|"]
    for r in ordered:
        num = (lambda v, f: "" if v is None else format(v, f))
        lines.append(f"| {r['name']} | {r['status']} | {num(r['psnr'], '.3f')} | {num(r['psnr_bicubic'], '.3f')} | "
                     f"{num(r['gain_db'], '+.3f')} | {num(r['bundle_bytes'], ',')} | "
                     + " | ".join(num(r[f"{s}_s"], ".1f") for s in STAGES) + f" | {r.get('train_node') or ''} |")
    if failed:
        lines += ["", "## Not done", ""] + [f"- {r['name']} ({r['stage']}): {r['error'] or 'unfinished'}" for r in failed]
    return "\n".join(lines) + "\n"


def write_summary(folder: Path, rows: dict[str, dict]) -> list[Path]:
    """summary.md, and summary.png (gain vs bundle bytes) when matplotlib is installed; the paths written."""
    folder = Path(folder)
    write_bytes(folder / "summary.md", summary_markdown(rows).encode())
    written = [folder / "summary.md"]
    done = [r for r in rows.values() if r["status"] == "done"]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no summary.png (pip install 'stdo[plot]')")
        return written
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["bundle_bytes"] / 1e6 for r in done], [r["gain_db"] for r in done])
    for r in done:
        ax.annotate(r["name"], (r["bundle_bytes"] / 1e6, r["gain_db"]), fontsize=7, alpha=0.7)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("bundle MB (video + models, every variant)")
    ax.set_ylabel("gain over bicubic, dB")
    ax.set_title(f"stdo-fleet: {len(done)} videos")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_bytes(folder / "summary.png", buffer.getvalue())
    return written + [folder / "summary.png"]
