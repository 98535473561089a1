"""TFLite files run by ai-edge-litert (LiteRT's interpreter): one signature per window shape, fed window by window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stdo.runtimes import signature_name
from stdo.toolchain import quiet, require


class TfliteRunner:
    """A .tflite model as a stdo.infer runner: float [N,3,h,w] in [0,1] -> [N,3,s·h,s·w], window by window through
    the signature of the windows' shape (signature_name)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        require("ai_edge_litert")
        from ai_edge_litert.interpreter import Interpreter

        with quiet():
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.signatures = self.interpreter.get_signature_list()  # name -> {inputs: [...], outputs: [...]}
        self._runners: dict[tuple[int, int], tuple] = {}

    def _runner(self, shape: tuple[int, int]) -> tuple:
        """(signature runner, its input name) of windows `shape`, made on first use."""
        if shape not in self._runners:
            name = signature_name(shape)
            if name not in self.signatures:
                raise ValueError(f"this .tflite has no signature for windows {shape}: it has {sorted(self.signatures)}")
            with quiet():
                runner = self.interpreter.get_signature_runner(name)
            self._runners[shape] = (runner, self.signatures[name]["inputs"][0])
        return self._runners[shape]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        runner, input_name = self._runner((int(x.shape[-2]), int(x.shape[-1])))
        batch = np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)
        outputs = [next(iter(runner(**{input_name: window[None]}).values()))[0].copy() for window in batch]
        return torch.from_numpy(np.stack(outputs))


def open_tflite(path: Path, threads: int | None = None, reference=None) -> TfliteRunner:
    return TfliteRunner(path, threads)
