"""Torch state dicts (.pt) of folded WDSRs, run by torch itself: the fp32 reference every bundle carries."""

from __future__ import annotations

from pathlib import Path

import torch

from stdo.errors import StdoError
from stdo.infer import Runner


def torch_runner(path: Path) -> Runner:
    """A folded WDSR state dict (.pt) as a runner, channels_last (about 1.6x faster convs on CPU)."""
    from stdo.models import load_wdsr

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = load_wdsr(state).eval().to(memory_format=torch.channels_last)
    except Exception as e:  # noqa: BLE001 - the file passed its sha256, so it was exported broken
        raise StdoError(f"{path} is not a WDSR state dict ({e.__class__.__name__}): export the bundle again") from None

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return run


def open_torch(path: Path, threads: int | None = None, reference=None) -> Runner:
    return torch_runner(path)
