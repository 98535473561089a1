"""Model file formats and the runtimes that run them: the one registry that export, its
verification, the player and the inference plan's shape policy share.

| format | suffix         | precisions (base first) | window shapes      | run by (player backend)         |
|--------|----------------|-------------------------|--------------------|---------------------------------|
| torch  | .pt            | fp32                    | any                | torch, channels_last (torch)    |
| onnx   | .onnx          | fp32, int8              | any                | onnxruntime (onnxruntime)       |
| tflite | .tflite        | fp32, fp16, int8        | one file per shape | ai-edge-litert (litert)         |
| coreml | .mlpackage.zip | fp16, int8              | any                | macOS only: here its spec is checked and its decompressed weights run in torch |

Adding a format is one entry here and its converter in stdo/export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stdo.errors import StdoError
from stdo.infer import Runner


@dataclass(frozen=True)
class FileFormat:
    name: str
    suffix: str
    precisions: tuple[str, ...]  # the base precision first
    fixed_shape: bool  # one file per window shape (the plan's shapes)
    checked_by: str
    converters: tuple[str, ...]  # Python modules that export needs

    @property
    def base_precision(self) -> str:
        return self.precisions[0]

    def filename(self, model_index: int, precision: str, shape: tuple[int, int] | None = None) -> str:
        tag = "" if precision == self.base_precision else f"_{precision}"
        size = f"_{shape[0]}x{shape[1]}" if self.fixed_shape and shape is not None else ""
        return f"model{model_index}{tag}{size}{self.suffix}"


FORMATS = {
    "torch": FileFormat("torch", ".pt", ("fp32",), False, "torch", ()),
    "onnx": FileFormat("onnx", ".onnx", ("fp32", "int8"), False, "onnxruntime", ("onnx", "onnxscript", "onnxruntime")),
    "tflite": FileFormat("tflite", ".tflite", ("fp32", "fp16", "int8"), True, "ai-edge-litert",
                         ("litert_torch", "ai_edge_litert")),
    "coreml": FileFormat("coreml", ".mlpackage.zip", ("fp16", "int8"), False, "coremltools spec + weights (torch)",
                         ("coremltools",)),
}
EXPORT_FORMATS = ("onnx", "tflite", "coreml")  # what stdo-export --format converts to (torch is always written)
BACKENDS = {"torch": "torch", "onnxruntime": "onnx", "litert": "tflite"}  # player backend -> the format it runs
PRECISIONS = ("fp32", "fp16", "int8")


def torch_runner(path: Path) -> Runner:
    """A folded WDSR state dict (.pt) as a runner, channels_last (about 1.6x faster convs on CPU)."""
    from stdo.models import load_wdsr

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = load_wdsr(state).eval().to(memory_format=torch.channels_last)
    except Exception as e:  # noqa: BLE001 - the file passed its sha256, so it was exported broken
        raise StdoError(f"{path} is not a WDSR state dict ({e.__class__.__name__}): export the bundle again") from None

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return run


def open_runner(fmt: str, path: Path, threads: int | None = None, reference: nn.Module | None = None) -> Runner:
    """A runner for one model file. CoreML needs `reference` (the torch model its weights are loaded into)."""
    if fmt == "torch":
        return torch_runner(path)
    if fmt == "onnx":
        from stdo.export.onnx import OnnxRunner

        return OnnxRunner(path, threads)
    if fmt == "tflite":
        from stdo.export.tflite import TfliteRunner

        return TfliteRunner(path, threads)
    if fmt == "coreml":
        from stdo.export.coreml import coreml_weights_model, inspect_coreml

        spec = inspect_coreml(path)
        if list(spec["inputs"]) != ["lr"] or spec["outputs"] != ["sr"] or spec["ops"].get("conv", 0) == 0:
            raise StdoError(f"{path.name}: unexpected CoreML spec {spec}")
        if reference is None:
            raise StdoError("CoreML models run only on Apple devices; here only with the reference torch model")
        return coreml_weights_model(path, reference)
    raise StdoError(f"unknown model format {fmt!r}: use one of {', '.join(FORMATS)}")
