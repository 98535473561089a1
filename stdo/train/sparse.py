"""A sparse update of a prior: `--tune sparse` trains what `--tune channels` trains (per-channel gains and
biases) plus the conv weights themselves, and after every optimizer step keeps only the `share` of those weights
that moved furthest from the prior, the rest reset to the prior's values (iterative hard thresholding; SRVC
sends such top-k coordinates as its model stream).

Why the weights' *directions*: a weight-normed conv weight is g * v / ||v|| per output channel, and the int8
exports quantize it per output channel with a scale proportional to the channel's largest |weight|, so each int8
value is round(127 * v_i / max|v|): it depends on v alone. A v moved in a few coordinates changes those int8
values only, which the XOR coding of stdo.updates then ships as a few bytes each, as long as the channel's
largest |v| stays where it is: were it to move, or another coordinate to outgrow it, every int8 value of the
channel would change (measured: 3.4x as many changed int8 values as moved coordinates without this). So each
channel's largest coordinate of the prior stays fixed and the others are held within its magnitude.
"""

from __future__ import annotations

import torch
from torch import nn

DIRECTION = "weight.original1"  # torch.nn.utils.parametrizations.weight_norm's v


def moves_sparsely(name: str) -> bool:
    """Whether a parameter is one a sparse update may move: a conv weight direction of the body (not of the fp32
    skip branch)."""
    return name.endswith(DIRECTION) and "skip." not in name


def sparse_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if moves_sparsely(name)]


class SparseProjection:
    """Called on the model after each optimizer step: every sparse parameter back to the prior but its
    `share` largest moves (one threshold over all of them)."""

    def __init__(self, model: nn.Module, share: float) -> None:
        self.start = {name: p.detach().clone() for name, p in sparse_parameters(model)}
        self.count = sum(t.numel() for t in self.start.values())
        self.keep = int(round(share * self.count))
        self.limit, self.fixed = {}, {}
        for name, v in self.start.items():  # per output channel: its largest |v| and where it is
            flat = v.abs().flatten(1)
            self.limit[name] = flat.max(dim=1).values.view(-1, *[1] * (v.dim() - 1))
            self.fixed[name] = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.argmax(1, keepdim=True),
                                                                                   True).view_as(v)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        params = sparse_parameters(model)
        deltas = []
        for name, p in params:  # within the channel's largest magnitude, that coordinate itself unmoved
            start, limit = self.start[name].to(p.device), self.limit[name].to(p.device)
            d = p.clamp(-limit, limit) - start
            deltas.append(d.masked_fill(self.fixed[name].to(p.device), 0.0))
        moves = torch.cat([d.abs().flatten() for d in deltas])
        if self.keep == 0:
            threshold = float("inf")
        elif self.keep >= self.count:
            threshold = 0.0
        else:
            threshold = float(torch.topk(moves, self.keep, sorted=False).values.min())
        for (name, p), d in zip(params, deltas):
            p.copy_(self.start[name].to(p.device) + torch.where(d.abs() >= threshold, d, torch.zeros_like(d)))
