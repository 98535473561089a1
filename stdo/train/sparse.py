"""A sparse update of a prior: `--tune sparse` trains what `--tune channels` trains (per-channel gains and
biases) plus the conv weights themselves, and after every optimizer step keeps only the `share` of those weights
that moved furthest from the prior, the rest reset to the prior's values (iterative hard thresholding; SRVC
sends such top-k coordinates as its model stream).

Why the weights' *directions*: a weight-normed conv weight is g * v / ||v|| per output channel, and the int8
exports quantize it per output channel with a scale proportional to the channel's largest |weight|, so each int8
value is round(127 * v_i / max|v|): it depends on v alone. A v moved in a few coordinates changes those int8
values only (and the channel's scale when the largest moves), which the XOR coding of stdo.updates then ships
as a few bytes each.
"""

from __future__ import annotations

import torch
from torch import nn

DIRECTION = "weight.original1"  # torch.nn.utils.parametrizations.weight_norm's v


def sparse_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The conv weight directions of the body a sparse update may move (not the fp32 skip branch's)."""
    return [(name, p) for name, p in model.named_parameters() if name.endswith(DIRECTION) and "skip." not in name]


class SparseProjection:
    """Called on the model after each optimizer step: every sparse parameter back to the prior but its
    `share` largest moves (one threshold over all of them)."""

    def __init__(self, model: nn.Module, share: float) -> None:
        self.share = share
        self.start = {name: p.detach().clone() for name, p in sparse_parameters(model)}
        self.count = sum(t.numel() for t in self.start.values())
        self.keep = int(round(share * self.count))

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        params = sparse_parameters(model)
        deltas = [p - self.start[name].to(p.device) for name, p in params]
        if self.keep >= self.count:
            return
        moves = torch.cat([d.abs().flatten() for d in deltas])
        if self.keep == 0:
            threshold = float("inf")
        else:
            threshold = float(torch.topk(moves, self.keep, sorted=False).values.min())
        for (name, p), d in zip(params, deltas):
            p.copy_(self.start[name].to(p.device) + torch.where(d.abs() >= threshold, d, torch.zeros_like(d)))

    def moved(self, model: nn.Module) -> int:
        """How many sparse coordinates differ from the prior now."""
        return sum(int((p.detach() != self.start[name].to(p.device)).sum()) for name, p in sparse_parameters(model))
