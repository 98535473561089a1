"""The priors a client carries: general WDSRs shipped as package data, one per (model, scale).

A prior is the start every on-device method trains from (`stdo-train --init prior`, the default when
one exists for the method's model and scale): what a per-video training adds to it is what a bundle
has to ship. Each is a bare WDSR state dict (stdo.models.load_wdsr reads it) named
`<model>_x<scale>.pt`; its id is the sha256 of that file.

The shipped priors are trained codec-aware (H.264 and HEVC at CRF 18-40, some clean LR) on the photographs that
stdo/priors/content.json lists (Debian and PyPI packages, with their licences), content disjoint from every clip
the demo, the tests and the benchmarks evaluate, by one command (`make prior`; see the Makefile); priors.json
records what each learnt from, how long, and its held-out validation figure.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stdo.errors import StdoError
from stdo.fileio import sha256_of

PRIORS_DIR = Path(__file__).parent  # the priors the package carries; clients may be given another folder
FACTS = "priors.json"


def prior_name(model: str, scale: int) -> str:
    return f"{model}_x{scale}.pt"


def find_prior(model: str, scale: int, root: Path = PRIORS_DIR) -> Path | None:
    """The shipped prior for `model` at x`scale` (in `root`, the priors a client carries), or None."""
    path = Path(root) / prior_name(model, scale)
    return path if path.is_file() else None


def load_prior(path: Path) -> tuple[dict, str]:
    """(state dict, id) of a prior file: the shipped one or a user's stdo-general checkpoint."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StdoError(f"the prior {path} does not exist: give a stdo-general checkpoint, or `init` scratch") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise StdoError(f"the prior {path} is not a checkpoint ({e.__class__.__name__}): "
                        "give a stdo-general checkpoint, or `init` scratch") from None
    return state, sha256_of(path)


def _facts(root: Path) -> dict:
    import json

    path = Path(root) / FACTS
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        raise StdoError(f"{path} is unreadable: reinstall stdo") from None


def prior_bases(prior_id: str, root: Path = PRIORS_DIR) -> list[dict]:
    """The base files clients carry for the prior of this sha256 (format, precision, path, sha256, bytes), [] if
    none; path is relative to root."""
    for facts in _facts(root).values():
        if facts.get("sha256") == prior_id:
            return list(facts.get("bases", []))
    return []


def base_file(sha256: str, root: Path = PRIORS_DIR) -> Path | None:
    """The carried base file of this sha256, or None: what a bundle's update names as its base."""
    for facts in _facts(root).values():
        for base in facts.get("bases", []):
            if base["sha256"] == sha256:
                return Path(root) / base["path"]
    return None
