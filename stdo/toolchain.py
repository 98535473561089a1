"""What the converters need from us: an import that names the missing extra, and silence.

litert-torch, coremltools and torchao print progress, version warnings and C++ logs
straight to stdout/stderr, some of it from native code. A converter call runs inside
`quiet()`, which sends file descriptors 1 and 2 to a temp file for its duration; the
captured text goes to the debug log (-vv), and its tail to the warning log when the
converter fails.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import warnings
from typing import Iterator

from stdo.errors import StdoError

log = logging.getLogger(__name__)

# module -> the pip distribution that provides it
PROVIDERS = {
    "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript",
    "litert_torch": "litert-torch", "ai_edge_litert": "ai-edge-litert", "ai_edge_quantizer": "ai-edge-quantizer",
    "coremltools": "coremltools",
}


def require(module: str, extra: str = "export"):
    """Import `module`, or raise a StdoError that says how to install it."""
    try:
        with quiet():
            return importlib.import_module(module)
    except ImportError:
        name = PROVIDERS.get(module.split(".")[0], module)
        raise StdoError(f"{name} is not installed: pip install 'stdo[{extra}]'") from None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Run a block with stdout/stderr (Python and native) and warnings captured to the debug log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text and failed:
                log.warning("converter output before the failure:\n%s", "\n".join(text.splitlines()[-20:]))
            elif text:
                log.debug("converter output:\n%s", text)
