"""The files of a prior that clients carry: what a bundle's model updates are coded against (stdo.updates).

For each variant export writes (torch fp32, ONNX fp32 and int8, TFLite fp32, fp16 and int8 at one reference
window, CoreML fp16 and int8) the prior's own file, converted exactly as export converts a per-video model; int8 is
calibrated on the prior's own coded training content (CoreML's int8 is weight-only: no data). Written by `python -m stdo.priors` into stdo/priors/<prior>/ and listed in priors.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stdo.fileio import read_json, save_torch, sha256_of
from stdo.models import fold_weight_norm, load_wdsr
from stdo.runtimes import FORMATS as RUNTIME_FORMATS, resolve
from stdo.train.priorset import MANIFEST

REFERENCE_WINDOW = (32, 32)
BASE_VARIANTS = (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "fp16"),
                 ("tflite", "int8"), ("coreml", "fp16"), ("coreml", "int8"))


def _calibration(lr: np.ndarray, shape: tuple[int, int], count: int = 256) -> list[np.ndarray]:
    """`count` LR windows [16, 3, h, w] in [0, 1] evenly over the frames of `lr`."""
    rng = np.random.default_rng(0)
    t, h, w, _ = lr.shape
    ys, xs, ts = rng.integers(0, h - shape[0], count), rng.integers(0, w - shape[1], count), rng.integers(0, t, count)
    batch = np.stack([lr[f, y : y + shape[0], x : x + shape[1]] for f, y, x in zip(ts, ys, xs)])
    batch = batch.transpose(0, 3, 1, 2).astype(np.float32) / 255
    return [batch[i : i + 16] for i in range(0, count, 16)]


def build_bases(prior: Path, out: Path, calibration_lr: np.ndarray) -> list[dict]:
    """Write the prior's base files into `out`; returns their entries (format, precision, path relative to
    out's parent, sha256, bytes)."""
    import torch

    model = fold_weight_norm(load_wdsr(torch.load(prior, map_location="cpu", weights_only=True))).eval()
    out.mkdir(parents=True, exist_ok=True)
    calibration = _calibration(calibration_lr, REFERENCE_WINDOW)
    entries = []
    for fmt, precision in BASE_VARIANTS:
        path = out / RUNTIME_FORMATS[fmt].filename(0, precision)
        if fmt == "torch":
            save_torch(path, model.state_dict())
        else:
            RUNTIME_FORMATS[fmt].convert(model, path, (REFERENCE_WINDOW,), precision,
                                         calibration if precision == "int8" else None)
        entries.append({"format": fmt, "precision": precision, "path": path.relative_to(out.parent).as_posix(),
                        "sha256": sha256_of(path), "bytes": path.stat().st_size})
        entries[-1].update(_activation_quantization(entries[-1], model, calibration))
    return entries


def _activation_quantization(entry: dict, model, calibration: list[np.ndarray]) -> dict:
    """{"activation_quantization": ...} for an int8 base whose format's converter takes one (stdo.runtimes), else {}."""
    quantization = RUNTIME_FORMATS[entry["format"]].activation_quantization
    if entry["precision"] != "int8" or quantization is None:
        return {}
    return {"activation_quantization": resolve(quantization)(model, calibration)}


def record_activation_quantization(root: Path, work: Path) -> dict:
    """Add to each carried prior's int8 base entries in root/priors.json, for the formats whose converter takes one,
    the activation quantization its file was converted with (recomputed from the prior's training set in `work`, as
    build_bases calibrates it), so that stdo-export converts the prior served as it is to the same numbers for any
    window shapes (tests/test_prior.py checks an export against the carried file)."""
    import torch

    from stdo.fileio import write_json
    from stdo.priors import FACTS
    from stdo.train.priorset import open_prior_set

    facts = read_json(Path(root) / FACTS)
    for name, prior in facts.items():
        model = fold_weight_norm(load_wdsr(torch.load(Path(root) / name, map_location="cpu", weights_only=True))).eval()
        calibration = _calibration(open_prior_set(Path(work) / "set-train", prior["scale"])[1], REFERENCE_WINDOW)
        for entry in prior["bases"]:
            entry.update(_activation_quantization(entry, model, calibration))
    write_json(Path(root) / FACTS, facts)
    return facts


RECIPE = "make prior PRIOR_STEPS={steps}"  # the Makefile's prior target: content, coded clip sets, training, bases
CLEAN_LR = "clean bicubic LR"


def _degradations(prior_set: Path, scale: int) -> dict:
    """What the prior's LR was: each codec's share and CRF range, and the clean share (from the set's clips.json)."""
    manifest = read_json(Path(prior_set) / MANIFEST)
    coding = [c[f"x{scale}"] for c in manifest["clips"]]
    out = {"clips": len(coding), "frames_per_clip": manifest["frames"]}
    for codec in sorted({c["codec"] for c in coding if c["codec"]}):
        crfs = [c["crf"] for c in coding if c["codec"] == codec]
        out[codec] = {"share": round(len(crfs) / len(coding), 3), "crf": [min(crfs), max(crfs)]}
    out[CLEAN_LR] = {"share": round(sum(c["codec"] is None for c in coding) / len(coding), 3)}
    return out


PRIOR_TIE_DB = 0.03  # a run's prior replaces the one it continued only when it beats it on the held-out validation
# by more than this (the curve's wander between evaluations late in a run): on a tie clients keep the files they carry


def write_carried(root: Path, work: Path, state: Path, steps: int) -> dict:
    """Ship the priors `make prior` trained: for each scale, the run's output (work/x<scale>/<model>_x<scale>.pt) or,
    when the run continued a prior (state/x<scale>/init.json) and did not beat it on the held-out validation by more
    than PRIOR_TIE_DB, that prior (state/x<scale>/init.pt). The chosen file goes to root/, its base files to
    root/<model>_x<scale>/ (int8 calibrated on the prior's own training content), and root/priors.json gets its
    id and size, the recipe and steps (a continued prior's count too), the content it learnt from (the
    catalogue's train split; validation held out), its degradations and its validation figure."""
    import shutil

    from stdo.fileio import write_json
    from stdo.priors import FACTS
    from stdo.train.priorcontent import catalogue
    from stdo.train.priorset import open_prior_set

    content = [{k: e[k] for k in ("registry", "package", "version", "path", "licence", "sha256")} for e in catalogue()
               if e["split"] == "train"]
    held_out = [f"{e['package']}: {e['path']}" for e in catalogue() if e["split"] == "validation"]
    facts = {}
    for trained in sorted(Path(work).glob("x*/*_x*.pt")):
        model, scale = trained.stem.rsplit("_x", 1)
        folder = Path(state) / f"x{scale}"
        curve = read_json(folder / f".{trained.name}.curve" / "curve.json")
        kept = max(curve["points"], key=lambda p: p["psnr"])  # the state training kept (the best on validation)
        validation = {"content": held_out, "step": kept["step"], "psnr": round(kept["psnr"], 3),
                      "bicubic_psnr": round(curve["bicubic_psnr"], 3)}
        started = read_json(folder / "init.json") if (folder / "init.json").is_file() else None
        run = {"steps": steps + (started["steps"] if started else 0), "recipe": RECIPE.format(steps=steps)}
        if started and validation["psnr"] - started["validation"]["psnr"] <= PRIOR_TIE_DB:
            # a tie: the carried prior stays, and says what did not replace it
            chosen, made = folder / "init.pt", {"steps": started["steps"], "recipe": started["recipe"]}
            history = {"continues": None, "validation": {**validation, **started["validation"]},
                       "not_replaced_by": {**run, "step": validation["step"], "psnr": validation["psnr"],
                                           "tie_db": PRIOR_TIE_DB}}
        else:
            chosen, made = trained, run
            history = {"continues": started, "validation": validation}
        path = Path(root) / trained.name
        shutil.copyfile(chosen, path)
        _, lr, _ = open_prior_set(Path(work) / "set-train", int(scale))
        facts[path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size, "model": model,
                            "scale": int(scale), **made, "schedule": "wsd", **history, "content": content,
                            "degradations": _degradations(Path(work) / "set-train", int(scale)),
                            "bases": build_bases(path, Path(root) / path.stem, lr)}
    write_json(Path(root) / FACTS, facts)
    return facts
