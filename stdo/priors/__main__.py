"""python -m stdo.priors WORK STATE STEPS: ship the priors `make prior` trained for STEPS steps (stdo.export.bases.
write_carried: each scale's new prior, or the one it continued where the new one only ties it on validation), with
their base files and priors.json, from the recipe's folders WORK (training set, trained priors) and STATE
(training state, validation curves).

python -m stdo.priors --activation-quantization WORK: record in priors.json the activation quantization of each
carried prior's TFLite int8 base (stdo.export.bases.record_activation_quantization), from the training set in WORK."""

from __future__ import annotations

import sys
from pathlib import Path

from stdo.priors import PRIORS_DIR

if __name__ == "__main__":
    from stdo.export.bases import record_activation_quantization, write_carried

    if len(sys.argv) == 3 and sys.argv[1] == "--activation-quantization":
        record_activation_quantization(PRIORS_DIR, Path(sys.argv[2]))
    elif len(sys.argv) == 4:
        write_carried(PRIORS_DIR, Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m stdo.priors WORK STATE STEPS | --activation-quantization WORK")
