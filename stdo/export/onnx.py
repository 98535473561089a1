"""ONNX export of a folded WDSR (one file, dynamic batch/height/width) and static int8 QDQ; and of brvsr's
two recurrence steps (one graph each) for a server.

Weight norm must be folded first (stdo.models.fold_weight_norm): unfolded, the exporter
keeps a ReduceL2/Div/Mul per conv. Static int8 is calibrated on the clip's own LR
windows; onnxruntime's dynamic (ConvInteger) int8 was ~20x slower than static on CPU
here, so it is not offered.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from stdo.runtimes.onnx import BRVSR_STEPS, INPUT, OUTPUT
from stdo.toolchain import quiet, require
from stdo.fileio import atomic_path

log = logging.getLogger(__name__)
OPSET = 18


def export_onnx(model: nn.Module, path: Path, example_size: tuple[int, int] = (32, 32)) -> Path:
    """Write `model` ([N,3,h,w] in [0,1] -> [N,3,s·h,s·w]) as one ONNX file with dynamic N, h, w; checked."""
    onnx = require("onnx")
    model = model.eval().cpu()
    dims = {0: torch.export.Dim("batch", min=1, max=4096), 2: torch.export.Dim("height", min=8, max=8192),
            3: torch.export.Dim("width", min=8, max=8192)}
    frames = getattr(getattr(model, "config", None), "frames", 1)  # a multi-frame model reads 3·frames channels
    example = torch.rand(1, 3 * frames, *example_size)
    with atomic_path(path, suffix=".onnx") as tmp, quiet():
        torch.onnx.export(model, (example,), str(tmp), dynamo=True, external_data=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT], dynamic_shapes={"x": dims}, verbose=False)
        onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    return Path(path)


def export_brvsr_onnx(model: nn.Module, folder: Path, example_size: tuple[int, int] = (32, 32)) -> dict[str, Path]:
    """Write brvsr's backward and forward steps as brvsr_backward.onnx / brvsr_forward.onnx (dynamic N, h, w;
    checked); returns their paths by step name."""
    onnx = require("onnx")
    model = model.eval().cpu()
    c, (h, w) = model.config.channels, example_size
    examples = {"backward": (torch.rand(1, 3, h, w), torch.rand(1, c, h, w), torch.randn(1, 2, h, w)),
                "forward": (torch.rand(1, 3, h, w), torch.rand(1, c, h, w), torch.randn(1, 2, h, w),
                            torch.rand(1, c, h, w))}
    batch = torch.export.Dim("batch", min=1, max=4096)
    height, width = torch.export.Dim("height", min=8, max=8192), torch.export.Dim("width", min=8, max=8192)
    paths = {}
    for name, (inputs, outputs) in BRVSR_STEPS.items():
        step = getattr(model, f"{name}_step")
        dims = tuple({0: batch, 2: height, 3: width} for _ in inputs)
        path = Path(folder) / f"brvsr_{name}.onnx"
        with atomic_path(path, suffix=".onnx") as tmp, quiet():
            torch.onnx.export(step, examples[name], str(tmp), dynamo=True, external_data=False, opset_version=OPSET,
                              input_names=list(inputs), output_names=list(outputs), dynamic_shapes=dims, verbose=False)
            onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
        paths[name] = path
    return paths


def quantize_onnx_int8(src: Path, dst: Path, calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 QDQ of the convs (activations uint8, weights int8 per channel in 7 bits), calibrated on `calibration` batches
    of LR windows [N, 3, h, w] in [0, 1] (the clip's own, not random data)."""
    require("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: np.ascontiguousarray(batch, np.float32)}

    with tempfile.TemporaryDirectory(prefix="stdo-quant-") as tmp, atomic_path(dst, suffix=".onnx") as out, quiet():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        # Only the convs, where the work is: with the Adds and the pixel shuffle quantized too, ONNX Runtime 1.31's
        # fused int8 graph gave garbage on an AVX2 CPU without VNNI (max error 1.2 on [0, 1]). Weights in 7 bits
        # (reduce_range): uint8 x int8 pairs summed in int16 saturate on such CPUs; on the test model int8 lost
        # 0.21 dB against fp32 with 8-bit weights there, 0.02 dB with 7.
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True, reduce_range=True, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=float_convs(pre))
        fixed_width_initializers(Path(out))
    return Path(dst)


def fixed_width_initializers(path: Path) -> None:
    """Store every initializer as raw little-endian bytes (the quantizer writes zero points as protobuf varints,
    1 or 2 bytes by value): the same model with other values then has the same byte layout, so a coded update
    (stdo.updates: XOR with the prior's file) stays aligned. The values, and so the model, are unchanged."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for i, tensor in enumerate(model.graph.initializer):
        if not tensor.raw_data:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
    onnx.save(model, str(path))


def float_convs(path: Path) -> list[str]:
    """Names of the convs int8 leaves in float: those that read the picture (WDSR's first conv and its 5x5 skip).

    Their rounding errors land on the pixels directly: the skip branch is the model's linear upsampler (bicubic
    at the start of training), and the first conv's output runs through every residual sum to the tail. Kept in
    float they cost a few KB; on the demo's model the skip alone cut the int8 loss against HR from 0.40 dB to
    0.15 dB, and on the shipped priors' held-out validation the first conv cut it from 0.20 to 0.06 dB (x2) and
    0.09 to 0.04 dB (x4). The tail conv kept float too gained 0.02-0.03 dB more, not worth its update bytes.
    """
    onnx = require("onnx")

    graph = onnx.load(str(path)).graph
    picture = {graph.input[0].name}  # the picture as the convs see it: the input less the image mean, padded
    for node in graph.node:  # in topological order
        if node.op_type in ("Sub", "Pad") and node.input[0] in picture:
            picture.update(node.output)
    return [n.name for n in graph.node if n.op_type == "Conv" and n.input[0] in picture]


def write_onnx(model: nn.Module, path: Path, shapes: tuple[tuple[int, int], ...], precision: str, calibration) -> None:
    """The converter of the format table (stdo.runtimes): fp32, or int8 calibrated on `calibration`; dynamic shape
    (any window: `shapes` is not needed)."""
    if precision == "fp32":
        export_onnx(model, path)
    else:
        with tempfile.TemporaryDirectory(prefix="stdo-onnx-") as tmp:
            quantize_onnx_int8(export_onnx(model, Path(tmp) / "fp32.onnx"), path, calibration)
