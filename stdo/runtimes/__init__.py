"""Model file formats and the runtimes that run them: the one registry that export, its
verification, the player and the inference plan's shape policy share.

| format | suffix         | precisions (base first) | window shapes             | run by (player backend)         |
|--------|----------------|-------------------------|---------------------------|---------------------------------|
| torch  | .pt            | fp32                    | any                       | torch, channels_last (torch)    |
| onnx   | .onnx          | fp32, int8              | any                       | onnxruntime (onnxruntime)       |
| tflite | .tflite        | fp32, fp16, int8        | one signature per shape   | ai-edge-litert (litert)         |
| coreml | .mlpackage.zip | fp16, int8              | any                       | macOS only: here its spec is checked and its decompressed weights run in torch |

Every format is one file per model and precision. A TFLite file holds one signature per window shape of the plan
(fixed input shapes: LiteRT resizes no input through XNNPack), named by `signature_name`, sharing one copy of the
weights; a client runs the signature of each window's shape.

The table drives dispatch both ways: `open_runner` opens a file with its entry's `runner` (a module of this
package: what players and export's verification run) and stdo-export converts with its `converter` (a module of
stdo.export, never imported by a player). Both are "module:function" names, imported when first used. A new format
is one entry here, its runner file in stdo/runtimes/ and its converter in stdo/export/.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from stdo.errors import StdoError
from stdo.infer import Runner


@dataclass(frozen=True)
class FileFormat:
    name: str
    suffix: str
    precisions: tuple[str, ...]  # the base precision first
    signatures: bool  # fixed input shapes: one signature per window shape of the plan (signature_name)
    checked_by: str
    converters: tuple[str, ...]  # Python modules that export needs
    runner: str  # "module:function" (path, threads, reference) -> Runner
    converter: str | None  # "module:function" (model, path, window shapes, precision, calibration)
    video_converter: str | None = None  # "module:function" (video model, folder) -> {step: path}: brvsr's steps
    batch: int | None = None  # the batch size its files take (None: any), the first of their input shape
    calibrated: bool = True  # its int8 is calibrated on the clip's LR windows (False: weight-only int8, no data)
    runs_here: bool = True  # its own runtime runs here (False: checked by its validator, timed nowhere: CoreML on
    # Linux runs its decompressed weights in torch)
    activation_quantization: str | None = None  # "module:function" (model, calibration) -> the activation
    # quantization its int8 converter takes instead of calibration windows: kept beside a prior's base file, so that
    # the prior served as it is converts for other window shapes to the same numbers

    def input_shape(self) -> list[int | None]:
        """The input shape the manifest declares for its files: [batch, 3, h, w], sizes None where dynamic or, for
        signatures, one per plan window shape."""
        return [self.batch, 3, None, None]

    @property
    def base_precision(self) -> str:
        return self.precisions[0]

    def filename(self, model_index: int, precision: str) -> str:
        tag = "" if precision == self.base_precision else f"_{precision}"
        return f"model{model_index}{tag}{self.suffix}"

    def open(self, path: Path, threads: int | None = None, reference: nn.Module | None = None) -> Runner:
        return resolve(self.runner)(path, threads, reference)

    def convert(self, model: nn.Module, path: Path, shapes: tuple[tuple[int, int], ...], precision: str, calibration
                ) -> None:
        """Write `model` as one file: traced at shapes[0], with one signature per shape where `signatures`."""
        if self.converter is None:
            raise StdoError(f"{self.name} files are not converted by stdo-export")
        resolve(self.converter)(model, path, shapes, precision, calibration)

    def convert_video_model(self, model: nn.Module, folder: Path) -> dict[str, Path]:
        if self.video_converter is None:
            raise StdoError(f"{self.name} files of video models are not written by stdo")
        return resolve(self.video_converter)(model, folder)


def signature_name(shape: tuple[int, int]) -> str:
    """The signature of a TFLite file that takes windows of `shape` (h, w): 'w68x160'."""
    return f"w{shape[0]}x{shape[1]}"


def resolve(name: str) -> Callable:
    """'package.module:function' -> the function (the module imported now: converters and runtimes are optional)."""
    module, function = name.split(":")
    return getattr(importlib.import_module(module), function)


FORMATS = {
    "torch": FileFormat("torch", ".pt", ("fp32",), False, "torch", (), "stdo.runtimes.pt:open_torch", None),
    "onnx": FileFormat("onnx", ".onnx", ("fp32", "int8"), False, "onnxruntime", ("onnx", "onnxscript", "onnxruntime"),
                       "stdo.runtimes.onnx:open_onnx", "stdo.export.onnx:write_onnx",
                       "stdo.export.onnx:export_brvsr_onnx"),
    "tflite": FileFormat("tflite", ".tflite", ("fp32", "fp16", "int8"), True, "ai-edge-litert",
                         ("litert_torch", "ai_edge_litert"), "stdo.runtimes.tflite:open_tflite",
                         "stdo.export.tflite:write_tflite", batch=1,
                         activation_quantization="stdo.export.tflite:activation_quantization"),
    "coreml": FileFormat("coreml", ".mlpackage.zip", ("fp16", "int8"), False, "coremltools spec + weights (torch)",
                         ("coremltools",), "stdo.runtimes.coreml:open_coreml", "stdo.export.coreml:write_coreml",
                         batch=1, calibrated=False, runs_here=False),
}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.converter)  # what stdo-export --format converts to
# (torch is always written)
BACKENDS = {"torch": "torch", "onnxruntime": "onnx", "litert": "tflite"}  # player backend -> the format it runs
PRECISIONS = ("fp32", "fp16", "int8")
QUANTIZE = ("int8", "fp16")  # what stdo-export --quantize may add beside each format's base precision


def open_runner(fmt: str, path: Path, threads: int | None = None, reference: nn.Module | None = None) -> Runner:
    """A runner for one model file. CoreML needs `reference` (the torch model its weights are loaded into)."""
    if fmt not in FORMATS:
        raise StdoError(f"unknown model format {fmt!r}: use one of {', '.join(FORMATS)}")
    return FORMATS[fmt].open(path, threads, reference)
