"""TFLite files run by ai-edge-litert (LiteRT's interpreter): one fixed window shape per file, fed window by window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stdo.toolchain import quiet, require


class TfliteRunner:
    """A .tflite model as a stdo.infer runner: float [N,3,h,w] in [0,1] -> [N,3,s·h,s·w], window by window."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        require("ai_edge_litert")
        from ai_edge_litert.interpreter import Interpreter

        with quiet():
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(int(v) for v in self.input["shape"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            raise ValueError(f"this .tflite takes windows {self.input_shape[1:]}, got {tuple(x.shape[1:])}")
        batch = np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)
        outputs = []
        for window in batch:
            self.interpreter.set_tensor(self.input["index"], window[None])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self.output["index"])[0].copy())
        return torch.from_numpy(np.stack(outputs))


def open_tflite(path: Path, threads: int | None = None, reference=None) -> TfliteRunner:
    return TfliteRunner(path, threads)
