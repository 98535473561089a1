"""TFLite export with litert-torch, in fp32, fp16 weights and int8, run with ai-edge-litert.

TFLite wants fixed input shapes (dynamic H/W does not convert, and resizing an input
fails in the XNNPack delegate: the pixel shuffle's reshapes are constants), so a model
is one file with one signature per window shape of the plan, [1, 3, h, w] each, named
by stdo.runtimes.signature_name; the signatures share one copy of the weights (three
shapes of the x4 prior: 382 KB against 355 KB for one). The runner feeds a batch window
by window.

- fp32: litert-torch straight from the folded model;
- fp16: the fp32 file with conv weights cast to float16 (ai-edge-quantizer's float
  casting): half the bytes, compute stays float;
- int8: torchao's PT2E flow with litert-torch's quantizer (int8 activations, per-channel
  symmetric int8 weights), calibrated on the clip's own LR windows. What touches the
  picture stays float, as in the ONNX export (stdo.export.onnx.float_convs): the first
  conv, the 5x5 skip conv (the model's linear upsampler), the sum with the body and the
  pixel shuffle. On the demo's first model the output end alone took int8 from 46.8 to
  60.9 dB against fp32 for 9 KB more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from stdo.fileio import write_bytes
from stdo.runtimes import signature_name
from stdo.toolchain import quiet, require

PRECISIONS = ("fp32", "fp16", "int8")


def _with_signatures(model: nn.Module, shapes: Sequence[tuple[int, int]], **convert_kwargs) -> bytes:
    """One flatbuffer of `model` with a signature per window shape."""
    litert_torch = require("litert_torch")
    converter = None
    for shape in shapes:
        args = (signature_name(shape), model, (torch.rand(1, 3, *shape),))
        converter = litert_torch.signature(*args) if converter is None else converter.signature(*args)
    with quiet():
        return converter.convert(**convert_kwargs).model_content()


def _compacted(flatbuffer: bytes) -> bytes:
    """The model with its tensors unnamed and each distinct quantization stored once.

    LiteRT runs a signature by the signature's own input and output names; the converter's tensor names (each
    tensor's torch module path, about 9 KB per signature) are read by no runtime. Each signature also repeats every
    tensor's quantization (per-channel scales): a FlatBuffer table may be referenced from several places, so the
    signatures share one copy. Both were repeated per signature and paid for in every coded update (bikes x4, three
    window shapes: the names were half of the update of an unchanged model; sharing the quantization took a
    retrained model's int8 update from 10.1 to 9.2 KB and its file from 148 to 128 KB).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    packed: dict[tuple, int] = {}  # a quantization's content -> its offset in the builder

    class Shared(schema.QuantizationParametersT):
        def Pack(self, builder):
            if self.details is not None:  # a custom quantization: kept as it is
                return super().Pack(builder)
            key = tuple(None if v is None else (np.asarray(v).dtype.str, np.asarray(v).tobytes())
                        for v in (self.min, self.max, self.scale, self.zeroPoint)) + (self.quantizedDimension,)
            if key not in packed:
                packed[key] = super().Pack(builder)
            return packed[key]

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
            if tensor.quantization is not None:
                shared = Shared()
                shared.__dict__.update(tensor.quantization.__dict__)
                tensor.quantization = shared
    builder = flatbuffers.Builder(len(flatbuffer))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _fp16_weights(fp32: bytes) -> bytes:
    require("ai_edge_quantizer")
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(bytearray(fp32))
    q.update_quantization_recipe(
        regex=".*", operation_name="CONV_2D", algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
        op_config=qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
            compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True))
    with quiet():
        return bytes(q.quantize().quantized_model)


def _float_output_end(quantizer):
    """`quantizer`, except that what touches WDSR's picture stays float: its first conv and its output end (skip
    conv, the sums outside the body, pixel shuffle)."""
    from torchao.quantization.pt2e.quantizer import Quantizer

    class FloatOutputEnd(Quantizer):
        def transform_for_annotation(self, model):
            return quantizer.transform_for_annotation(model)

        def annotate(self, model):
            model = quantizer.annotate(model)
            for node in model.graph.nodes:
                stack = node.meta.get("nn_module_stack")
                path = list(stack.values())[-1][0] if stack else None
                if path is not None and (path in ("", "body.0") or path.startswith(("skip", "shuf"))):
                    node.meta.pop("quantization_annotation", None)
            return model

        def validate(self, model) -> None:
            quantizer.validate(model)

    return FloatOutputEnd()


def _quantizer():
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer.PT2EQuantizer().set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))


def _prepared(model: nn.Module, shape: tuple[int, int], quantizer) -> nn.Module:
    """`model` traced with dynamic H/W (one set of activation ranges serves every window shape) and observed."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    sizes = {2: torch.export.Dim("h"), 3: torch.export.Dim("w")}
    traced = torch.export.export(model, (torch.rand(1, 3, *shape),), dynamic_shapes=(sizes,))
    return prepare_pt2e(traced.module(), _float_output_end(quantizer))


def _observe(prepared: nn.Module, calibration: Iterable[np.ndarray]) -> None:
    with torch.no_grad():
        for batch in calibration:
            for window in torch.from_numpy(np.ascontiguousarray(batch, np.float32)):
                prepared(window[None])


def _activation_observers(prepared: nn.Module) -> dict[str, nn.Module]:
    """The observers of activations (those of weights see only the weights), by name."""
    return {name: module for name, module in prepared.named_modules()
            if name.startswith("activation_post_process_") and not hasattr(module, "ch_axis")}


def activation_quantization(model: nn.Module, calibration: Iterable[np.ndarray]) -> dict[str, list]:
    """{observer: [scale, zero point]} of each activation of `model`'s int8 TFLite calibrated on `calibration`: what
    a prior's base file keeps, so that the prior served as it is converts for other window shapes to the very same
    numbers (its update then holds the shapes alone)."""
    with quiet():
        prepared = _prepared(model.eval().cpu(), (32, 32), _quantizer())
        _observe(prepared, calibration)
        out = {}
        for name, observer in _activation_observers(prepared).items():
            scale, zero_point = observer.calculate_qparams()
            out[name] = [float(scale.item()), int(zero_point.item())]
    return out


def _fixed(scale: float, zero_point: int):
    return lambda: (torch.tensor([scale], dtype=torch.float32), torch.tensor([zero_point], dtype=torch.int32))


def _int8_flatbuffer(model: nn.Module, shapes: Sequence[tuple[int, int]],
                     calibration: Iterable[np.ndarray] | dict[str, list]) -> bytes:
    """`calibration`: the clip's LR windows, or a prior's activation_quantization (the weights' observers still see
    the weights, through one forward pass)."""
    require("litert_torch")
    from litert_torch.quantize import quant_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    quantizer = _quantizer()
    with quiet():
        prepared = _prepared(model, shapes[0], quantizer)
        if isinstance(calibration, dict):
            observers = _activation_observers(prepared)
            if set(observers) != set(calibration):
                raise ValueError("the prior's activation quantization does not match this model's activations")
            for name, (scale, zero_point) in calibration.items():
                observers[name].calculate_qparams = _fixed(scale, zero_point)
            calibration = [np.zeros((1, 3, *shapes[0]), np.float32)]
        _observe(prepared, calibration)
        quantized = convert_pt2e(prepared, fold_quantize=False)
    return _with_signatures(quantized, shapes, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))


def export_tflite(model: nn.Module, path: Path, windows: Sequence[tuple[int, int]], precision: str = "fp32",
                  calibration: Iterable[np.ndarray] | None = None) -> Path:
    """Write `model` (folded WDSR, [1,3,h,w] in [0,1] -> [1,3,s·h,s·w]) as one .tflite with a signature per window
    shape (h, w) of `windows`.

    int8 needs `calibration`: batches of the clip's LR windows [N, 3, h, w] in [0, 1], of any of the shapes, or
    the carried prior's activation_quantization where the prior is served as it is.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {PRECISIONS}")
    windows = tuple(dict.fromkeys((int(h), int(w)) for h, w in windows))
    model = model.eval().cpu()
    if precision == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration windows")
        data = _int8_flatbuffer(model, windows, calibration)
    else:
        data = _with_signatures(model, windows)
        if precision == "fp16":
            data = _fp16_weights(data)
    write_bytes(path, _compacted(data))
    return Path(path)


def write_tflite(model: nn.Module, path: Path, shapes: tuple[tuple[int, int], ...], precision: str,
                 calibration) -> None:
    """The converter of the format table (stdo.runtimes): one file, a signature per window shape."""
    export_tflite(model, path, shapes, precision, calibration)
