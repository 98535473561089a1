"""What every benchmark writes at its end: results/<name>.json (the figures) and <name>.md (the table), printed.

Imported by the scripts beside it (run as `python benchmarks/NAME.py`, so this folder is on sys.path).
"""

from __future__ import annotations

import json
from pathlib import Path


def write_results(out: Path, name: str, data, markdown: str) -> None:
    """Write out/<name>.json and out/<name>.md (whole files, the folder made if needed) and print the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
    print(markdown)
