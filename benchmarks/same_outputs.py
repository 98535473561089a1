"""Does a restructuring change what stdo makes? The same small job run by two revisions, their outputs compared.

Each revision is checked out (git worktree) and run with this checkout's virtual environment, its own code first on
PYTHONPATH: stdo-cluster on bikes (x4, 8 frames, a 320x160 crop, H.264 CRF 27), stdo-train stdo (from the prior,
100 steps), stdo-export (ONNX fp32 + int8, coded updates), stdo-play (int8, lossless output), stdo-upscale (the
trained models in torch, lossless output) and stdo-deliver (the same clip, CRF 27, stdo and the prior alone at x4 and
the HR stream, 50 steps, 60 KB). Compared, byte for byte: the RUN's frames and chunks, the trained models, every
bundle file, the delivery's points and bundle, and the played and upscaled frames (decoded from the lossless mp4s).
Run-dependent fields (paths, times, run ids made of them) are left out of the JSON files compared.

  python benchmarks/same_outputs.py --base 07ff63e        # against HEAD's working tree
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from results_io import results_dir, write_results

ROOT = Path(__file__).resolve().parents[1]
# JSON fields that name where or when a run happened (run_id hashes the RUN's path and time), not what it made
VOLATILE = {"path", "seconds", "created", "timings", "train_seconds", "time", "elapsed_s", "machine", "node", "run",
            "bundle", "out", "source", "versions", "torch", "python", "duration", "wall_s", "fps", "started",
            "finished", "hostname", "run_id", "wall_seconds", "ms_per_window"}


def stages(work: Path) -> list[list[str]]:
    """The job, in flags that every compared revision reads (old spellings still work in newer ones)."""
    run = work / "run"
    return [
        ["stdo.cluster.cli", "@bikes", str(run), "--scale", "4",
         "--grid", "4x2", "--chunks", "2", "--frames", "8", "--crop", "320x160+160+64", "--crf", "27", "-q"],
        ["stdo.train.cli", str(run), "--method", "stdo", "--steps", "100", "--batch", "8", "-q"],
        ["stdo.export.cli", str(run), "--format", "onnx", "--quantize", "int8", "--verify-frames", "2", "-q"],
        ["stdo.play.cli", str(run / "bundle"), "--precision", "int8", "--out", str(work / "sr.mp4"), "--crf", "0",
         "-q"],
        ["stdo.upscale.cli", str(run), "--method", "stdo", "--out", str(work / "upscaled.mp4"), "--out-crf", "0", "-q"],
        ["stdo.deliver.cli", "@bikes", str(work / "delivery"), "--budget", "60KB", "--crf", "27", "--scale", "4,1",
         "--no-fill-budget", "--grid", "4x2", "--chunks", "2", "--frames", "8", "--crop", "320x160+160+64",
         "--method", "stdo,prior", "--steps", "50", "-q"],
    ]


def run_revision(code: Path, work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    bikes = subprocess.run([sys.executable, "-c", "from stdo.clips import clip_path; print(clip_path('bikes'))"],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    for module, *args in stages(work):
        args = [bikes if a == "@bikes" else a for a in args]
        done = subprocess.run([sys.executable, "-c", f"from {module} import main; main()", *args], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{code}: {module} failed: {done.stderr.strip().splitlines()[-1:]}")


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def differing_fields(a, b, prefix: str = "") -> list[str]:
    """The dotted names of the fields where two JSON values differ (a field only one side has counts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [f for k in sorted(set(a) | set(b)) for f in differing_fields(a.get(k), b.get(k), f"{prefix}{k}.")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [f for i, (x, y) in enumerate(zip(a, b)) for f in differing_fields(x, y, f"{prefix}{i}.")]
    return [] if a == b else [prefix.rstrip(".")]


def fingerprint(work: Path, documents: dict) -> dict[str, str]:
    """sha256 per output: binary files as they are, JSON without its volatile fields (kept in `documents`), the
    played frames decoded."""
    from stdo.video import read_video

    out = {}
    for path in sorted(p for folder in ("run", "delivery") for p in (work / folder).rglob("*")):
        rel = str(path.relative_to(work))
        if not path.is_file() or any(p.startswith(".") for p in path.relative_to(work).parts) or "/state/" in rel:
            continue
        if path.suffix in (".log", ".md", ".png"):
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            documents[rel] = _stable(json.loads(data))
            data = json.dumps(documents[rel], sort_keys=True).encode()
        out[rel] = hashlib.sha256(data).hexdigest()
    for name, video in (("played frames", "sr.mp4"), ("upscaled frames", "upscaled.mp4")):
        frames, _ = read_video(work / video)
        out[name] = hashlib.sha256(frames.tobytes()).hexdigest()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision before the change (a commit)")
    parser.add_argument("--head", help="the revision after it [default: this working tree]")
    parser.add_argument("--out", type=Path, default=results_dir("same_outputs"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stdo-same-") as tmp:
        tmp = Path(tmp)
        trees = {}
        for name, rev in (("base", args.base), ("head", args.head)):
            if rev is None:
                trees[name] = ROOT
                continue
            trees[name] = tmp / f"tree-{name}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(trees[name]), rev],
                           check=True)
        try:
            prints, documents = {}, {}
            for name, code in trees.items():
                run_revision(code, tmp / name)
                documents[name] = {}
                prints[name] = fingerprint(tmp / name, documents[name])
        finally:
            for name, tree in trees.items():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    head_rev = args.head or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip() + " (working tree)"
    names = sorted(set(prints["base"]) | set(prints["head"]))
    rows = [(n, prints["base"].get(n), prints["head"].get(n)) for n in names]
    same = [n for n, a, b in rows if a == b]
    lines = [f"# Same outputs: {args.base} against {head_rev}", "",
             "bikes x4, 8 frames 320x160, CRF 27; stdo 100 steps from the prior; ONNX fp32 + int8; played int8; "
             "upscaled in torch; delivered at 60 KB (stdo 50 steps, the prior alone, the HR stream).",
             f"Command: `python benchmarks/same_outputs.py --base {args.base}`", "",
             f"{len(same)} of {len(rows)} outputs identical.", "", "| output | same |", "|---|---|"]
    def verdict(name: str, a, b) -> str:
        if a == b:
            return "yes"
        if a is None or b is None:
            return "only in " + ("head" if a is None else "base")
        if name in documents["base"] and name in documents["head"]:
            return "fields differ: " + ", ".join(differing_fields(documents["base"][name], documents["head"][name]))
        return "NO"

    lines += [f"| {n} | {verdict(n, a, b)} |" for n, a, b in rows]
    write_results(args.out, "same_outputs", {"base": args.base, "head": head_rev, "outputs": {
        n: {"base": a, "head": b} for n, a, b in rows}}, "\n".join(lines))


if __name__ == "__main__":
    main()
