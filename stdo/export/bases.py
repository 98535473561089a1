"""The files of a prior that clients carry: what a bundle's model updates are coded against (stdo.updates).

For each variant export writes (torch fp32, ONNX fp32 and int8, TFLite fp32, fp16 and int8 at one reference
window) the prior's own file, converted exactly as export converts a per-video model; int8 is calibrated on
the prior's content. Written by `python -m stdo.priors` into stdo/priors/<prior>/ and listed in priors.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stdo.fileio import save_torch, sha256_of
from stdo.models import fold_weight_norm, load_wdsr
from stdo.runtimes import FORMATS as RUNTIME_FORMATS

REFERENCE_WINDOW = (32, 32)
BASE_VARIANTS = (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "fp16"),
                 ("tflite", "int8"))


def _calibration(lr: np.ndarray, shape: tuple[int, int], count: int = 64) -> list[np.ndarray]:
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

    from stdo.export.pipeline import Variant, _write_model

    model = fold_weight_norm(load_wdsr(torch.load(prior, map_location="cpu", weights_only=True))).eval()
    out.mkdir(parents=True, exist_ok=True)
    calibration = _calibration(calibration_lr, REFERENCE_WINDOW)
    entries = []
    for fmt, precision in BASE_VARIANTS:
        path = out / RUNTIME_FORMATS[fmt].filename(0, precision, REFERENCE_WINDOW)
        if fmt == "torch":
            save_torch(path, model.state_dict())
        else:
            _write_model(Variant(fmt, precision), model, path, REFERENCE_WINDOW,
                         calibration if precision == "int8" else None)
        entries.append({"format": fmt, "precision": precision, "path": path.relative_to(out.parent).as_posix(),
                        "sha256": sha256_of(path), "bytes": path.stat().st_size})
    return entries


COMMAND = ("stdo-general $(python -m stdo.train.priordata) --crf 18,23,28,33 --model {model} --scale {scale} "
           "--frames 8 --steps {steps} --out {name}")


def write_carried(root: Path, steps: int) -> dict:
    """For every prior <model>_x<scale>.pt in `root`: its base files in root/<model>_x<scale>/, and root/priors.json
    (the prior's id, size, the command that made it, its base files)."""
    from stdo.fileio import write_json
    from stdo.priors import FACTS
    from stdo.train.priordata import image_clip, skimage_photos

    facts = {}
    for path in sorted(p for p in Path(root).glob("*_x*.pt") if not p.name.startswith(".")):
        model, scale = path.stem.rsplit("_x", 1)
        _, lr = image_clip(skimage_photos()[0], 8, int(scale))
        facts[path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size, "model": model,
                            "scale": int(scale), "content": "scikit-image's photographs (stdo.train.priordata)",
                            "codec": "h264", "crfs": [18, 23, 28, 33],
                            "command": COMMAND.format(model=model, scale=scale, steps=steps, name=path.name),
                            "bases": build_bases(path, Path(root) / path.stem, lr)}
    write_json(Path(root) / FACTS, facts)
    return facts
