"""python -m stdo.priors WORK STATE STEPS: ship the priors `make prior` trained for STEPS steps (stdo.export.bases.
write_carried: each scale's new prior, or the one it continued where the new one only ties it on validation), with
their base files and priors.json, from the recipe's folders WORK (training set, trained priors) and STATE
(training state, validation curves)."""

from __future__ import annotations

import sys
from pathlib import Path

from stdo.priors import PRIORS_DIR

if __name__ == "__main__":
    from stdo.export.bases import write_carried

    if len(sys.argv) != 4:
        sys.exit("usage: python -m stdo.priors WORK STATE STEPS")
    write_carried(PRIORS_DIR, Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
