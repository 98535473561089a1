"""python -m stdo.priors: write priors.json (each shipped prior's id, size and the command that made it)."""

from __future__ import annotations

import sys

from stdo.fileio import sha256_of, write_json
from stdo.priors import PRIORS_DIR

COMMAND = ("stdo-general $(python -m stdo.train.priordata) --crf 18,23,28,33 --model {model} --scale {scale} "
           "--frames 8 --steps {steps} --out stdo/priors/{name}")


def main(steps: int) -> None:
    facts = {}
    for path in sorted(PRIORS_DIR.glob("*_x*.pt")):
        model, scale = path.stem.rsplit("_x", 1)
        facts[path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size, "model": model,
                            "scale": int(scale), "content": "scikit-image's photographs (stdo.train.priordata)",
                            "codec": "h264", "crfs": [18, 23, 28, 33],
                            "command": COMMAND.format(model=model, scale=scale, steps=steps, name=path.name)}
    write_json(PRIORS_DIR / "priors.json", facts)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
