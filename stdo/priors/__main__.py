"""python -m stdo.priors [STEPS]: write each shipped prior's base files and priors.json (stdo.export.bases)."""

from __future__ import annotations

import sys

from stdo.priors import PRIORS_DIR

if __name__ == "__main__":
    from stdo.export.bases import write_carried

    write_carried(PRIORS_DIR, int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
