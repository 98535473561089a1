"""CoreML files (zipped .mlpackage) as far as Linux can run them: prediction needs macOS.

`inspect_coreml` reads the spec (input/output names and shapes, op counts) and `coreml_weights_model` decompresses
the weights as the device will see them and loads them into the torch model, so their numerics can be measured on
the clip (compute in fp32 here; the device computes in fp16).
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
from stdo.toolchain import quiet, require

_NAME_SUFFIXES = ("_quantized", "_palettized", "_to_fp16")


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


def open_coreml(path: Path, threads: int | None = None, reference: nn.Module | None = None) -> nn.Module:
    """The file's spec checked, its weights run in torch in a copy of `reference` (the model it was exported from)."""
    spec = inspect_coreml(path)
    if list(spec["inputs"]) != ["lr"] or spec["outputs"] != ["sr"] or spec["ops"].get("conv", 0) == 0:
        raise StdoError(f"{path.name}: unexpected CoreML spec {spec}")
    if reference is None:
        raise StdoError("CoreML models run only on Apple devices; here only with the reference torch model")
    return coreml_weights_model(path, reference)
