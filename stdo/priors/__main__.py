"""python -m stdo.priors WORK STATE STEPS: write each shipped prior's base files and priors.json (stdo.export.bases),
from the recipe's folders WORK (its training set) and STATE (training state, validation curves) after `make prior`
trained STEPS steps."""

from __future__ import annotations

import sys
from pathlib import Path

from stdo.priors import PRIORS_DIR

if __name__ == "__main__":
    from stdo.export.bases import write_carried

    if len(sys.argv) != 4:
        sys.exit("usage: python -m stdo.priors WORK STATE STEPS")
    write_carried(PRIORS_DIR, Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
