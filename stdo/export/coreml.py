"""CoreML export with coremltools: an mlprogram in fp16, and with int8 weights, zipped.

An .mlpackage is a directory; the bundle ships it as one zip file (`*.mlpackage.zip`,
stored entries, fixed timestamps, so the same model gives the same bytes and sha256).
The app unzips it and compiles it with MLModel.compileModel(at:).

Prediction needs macOS. On Linux `inspect_coreml` reads the spec (input/output names
and shapes, op counts) and `coreml_weights_model` decompresses the weights as the
device will see them and loads them into the torch model, so their numerics can be
measured on the clip (compute in fp32 here; the device computes in fp16).
"""

from __future__ import annotations

import copy
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stdo.errors import StdoError
from stdo.export.onnx import INPUT, OUTPUT
from stdo.export.toolchain import quiet, require
from stdo.fileio import atomic_path

PRECISIONS = ("fp16", "int8")
MAX_SIDE = 4096
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_NAME_SUFFIXES = ("_quantized", "_palettized", "_to_fp16")


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


def _load(path: Path, tmp: str):
    ct = require("coremltools")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        if not names or any(n.startswith("/") or ".." in n.split("/") for n in names):
            raise StdoError(f"{path} is not a zipped .mlpackage")
        zf.extractall(tmp)
    package = Path(tmp) / names[0].split("/")[0]
    with quiet():
        return ct.models.MLModel(str(package), skip_model_load=True)  # loading needs macOS


def inspect_coreml(path: Path) -> dict:
    """Spec facts of a zipped mlprogram: input/output names, input shape ranges, op counts, precision of weights."""
    with tempfile.TemporaryDirectory(prefix="stdo-coreml-") as tmp:
        spec = _load(Path(path), tmp).get_spec()
    ops: Counter = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations)
    inputs = {}
    for i in spec.description.input:
        ranges = i.type.multiArrayType.shapeRange.sizeRanges
        inputs[i.name] = [[int(r.lowerBound), int(r.upperBound)] for r in ranges]
    return {"inputs": inputs, "outputs": [o.name for o in spec.description.output], "ops": dict(ops)}


def coreml_weights_model(path: Path, like: nn.Module) -> nn.Module:
    """A copy of the torch model `like` carrying the CoreML file's weights, decompressed as the device sees them."""
    require("coremltools")
    import coremltools.optimize.coreml as cto

    with tempfile.TemporaryDirectory(prefix="stdo-coreml-") as tmp, quiet():
        mlmodel = _load(Path(path), tmp)
        weights = {name: meta.val for name, meta in
                   cto.get_weights_metadata(cto.decompress_weights(mlmodel), weight_threshold=0).items()}
    by_torch_name = {}
    for name, value in weights.items():
        for suffix in _NAME_SUFFIXES:
            name = name.removesuffix(suffix)
        by_torch_name[name] = value
    state = like.state_dict()
    for key, tensor in state.items():
        value = by_torch_name.get(key.replace(".", "_"))
        if value is None or tuple(value.shape) != tuple(tensor.shape):
            if tensor.numel() == 1 or not key.endswith(("weight", "bias")):
                continue  # a scalar or buffer the converter folded into an op
            raise StdoError(f"{path} has no weight matching {key} {tuple(tensor.shape)}: not exported from this model")
        state[key] = torch.from_numpy(np.asarray(value, np.float32))
    model = copy.deepcopy(like)
    model.load_state_dict(state)
    return model.eval()
