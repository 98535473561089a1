"""What every benchmark shares: where its results go (results/<name>/), the line that names the machine they were
measured on, and the writer of its figures (<name>.json) and table (<name>.md), printed.

Imported by the scripts beside it (run as `python benchmarks/NAME.py`, so this folder is on sys.path).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def results_dir(name: str) -> Path:
    """A benchmark's default `--out`: results/<name>/ (the docs read its <name>.md there)."""
    return RESULTS / name


def machine_line(*details: str) -> str:
    """The machine a result was measured on, as every results file names it: architecture, cores, Python and torch
    versions, then the benchmark's own `details` (threads, device, ...)."""
    import torch

    parts = [platform.machine(), f"{os.cpu_count()} cores", f"Python {platform.python_version()}",
             f"torch {torch.__version__}", *details]
    return ", ".join(parts)


def write_results(out: Path, name: str, data, markdown: str) -> None:
    """Write out/<name>.json and out/<name>.md (whole files, the folder made if needed) and print the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
    print(markdown)
