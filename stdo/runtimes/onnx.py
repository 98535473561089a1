"""ONNX files run by onnxruntime (CPU): a WDSR as a stdo.infer runner, and brvsr's recurrence steps for a server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stdo.toolchain import require

INPUT, OUTPUT = "lr", "sr"  # the graph's tensor names, which every client feeds and reads
# brvsr: one step of each recurrence as a graph (stdo.models.brvsr); a server runs the recurrence around them
BRVSR_STEPS = {
    "backward": (("lr", "state", "flow"), ("state_out",)),
    "forward": (("lr", "state", "flow", "backward_state"), ("state_out", "sr")),
}


def session(path: Path, threads: int | None):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Idle pool threads otherwise spin after each run, taking the cores from the plan's stitching between
    # runs (measured: 21 of 145 ms per 1080p frame of windows, ~1 ms without; whole-frame runs unchanged).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxStep:
    """An exported brvsr step as a callable of the torch step's signature (tensors in, tensor(s) out)."""

    def __init__(self, path: Path, name: str, threads: int | None = None) -> None:
        self.session = session(path, threads)
        self.inputs, self.outputs = BRVSR_STEPS[name]

    def __call__(self, *args: torch.Tensor):
        feeds = {k: np.ascontiguousarray(a.detach().cpu().numpy(), np.float32) for k, a in zip(self.inputs, args)}
        out = [torch.from_numpy(y) for y in self.session.run(list(self.outputs), feeds)]
        return out[0] if len(out) == 1 else tuple(out)


class OnnxRunner:
    """An ONNX model as a stdo.infer runner: float tensor [N,3,h,w] in [0,1] -> [N,3,s·h,s·w]."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session = session(path, threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)})[0]
        return torch.from_numpy(y)


def open_onnx(path: Path, threads: int | None = None, reference=None) -> OnnxRunner:
    return OnnxRunner(path, threads)
