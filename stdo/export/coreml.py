"""CoreML export with coremltools: an mlprogram in fp16, and with int8 weights, zipped.

An .mlpackage is a directory; the bundle ships it as one zip file (`*.mlpackage.zip`,
stored entries, fixed timestamps, so the same model gives the same bytes and sha256).
The app unzips it and compiles it with MLModel.compileModel(at:).

Prediction needs macOS; what Linux can check of the file is stdo.runtimes.coreml's.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from stdo.runtimes.onnx import INPUT, OUTPUT
from stdo.toolchain import quiet, require
from stdo.fileio import atomic_path

PRECISIONS = ("fp16", "int8")
MAX_SIDE = 4096
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _zip_dir(src: Path, dst: Path) -> None:
    with atomic_path(dst, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{src.name}/{file.relative_to(src).as_posix()}", _ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, file.read_bytes())


def export_coreml(model: nn.Module, path: Path, precision: str = "fp16", example_size: tuple[int, int] = (32, 32)) -> Path:
    """Write `model` (folded WDSR) as a zipped mlprogram with input `lr` [1, 3, H, W] (H, W up to 4096)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {PRECISIONS}")
    ct = require("coremltools")
    model = model.eval().cpu()
    example = torch.rand(1, 3, *example_size)
    with quiet():
        traced = torch.jit.trace(model, example)
        shape = ct.Shape((1, 3, ct.RangeDim(8, MAX_SIDE, example_size[0]), ct.RangeDim(8, MAX_SIDE, example_size[1])))
        mlmodel = ct.convert(traced, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                             inputs=[ct.TensorType(name=INPUT, shape=shape)], outputs=[ct.TensorType(name=OUTPUT)],
                             minimum_deployment_target=ct.target.iOS16)
        if precision == "int8":
            import coremltools.optimize.coreml as cto

            # the 5x5 skip conv (the model's linear upsampler) stays fp16, as in the ONNX int8 model: its
            # rounding lands on the output pixels directly (on the 2-block test model int8 lost 0.31 dB with it)
            skip = {name: None for name, meta in cto.get_weights_metadata(mlmodel, weight_threshold=0).items()
                    if meta.val.ndim == 4 and tuple(meta.val.shape[-2:]) == (5, 5)}
            config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0),
                op_name_configs=skip)
            mlmodel = cto.linear_quantize_weights(mlmodel, config)
        with tempfile.TemporaryDirectory(prefix="stdo-coreml-") as tmp:
            package = Path(tmp) / Path(path).name.removesuffix(".zip")
            mlmodel.save(str(package))
            _zip_dir(package, Path(path))
    return Path(path)


def write_coreml(model: nn.Module, path: Path, shapes: tuple[tuple[int, int], ...], precision: str, calibration
                 ) -> None:
    """The converter of the format table (stdo.runtimes): an mlprogram traced at the first window shape, flexible
    H/W."""
    export_coreml(model, path, precision, example_size=shapes[0])
