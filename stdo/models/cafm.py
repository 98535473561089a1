"""CaFM-style content-aware modulation over a shared WDSR backbone.

After each conv of each residual block, chunk k applies x + γ_k·(a_k ⊙ x + b_k): a
depthwise 1x1 conv (per-channel scale a and bias b) weighted by γ_k, which starts at 0 so
training begins from the shared backbone. Only a, b and γ are per chunk.

Because the modulation is affine per channel right after a conv, it folds into that
conv: `fold(k)` returns a plain WDSR for chunk k with no extra cost at inference.
"""

from __future__ import annotations

import torch
from torch import nn

from stdo.models.wdsr import WDSR, WDSRConfig, fold_weight_norm


class Modulation(nn.Module):
    def __init__(self, channels: int, num_chunks: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_chunks, channels))
        self.bias = nn.Parameter(torch.zeros(num_chunks, channels))
        self.gamma = nn.Parameter(torch.zeros(num_chunks))

    def forward(self, x: torch.Tensor, chunk_ids: torch.Tensor) -> torch.Tensor:
        a = self.scale[chunk_ids][:, :, None, None]
        b = self.bias[chunk_ids][:, :, None, None]
        g = self.gamma[chunk_ids][:, None, None, None]
        return x + g * (a * x + b)

    def affine(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(multiplier, offset) per channel that this modulation applies for `chunk`."""
        g = self.gamma[chunk]
        return 1 + g * self.scale[chunk], g * self.bias[chunk]


class CaFMWDSR(nn.Module):
    def __init__(self, config: WDSRConfig, num_chunks: int) -> None:
        super().__init__()
        self.config, self.num_chunks = config, num_chunks
        self.backbone = WDSR(config)
        wide = int(config.num_residual_units * config.width_multiplier)
        self.mods = nn.ModuleList()
        for _ in range(config.num_blocks):
            self.mods.append(Modulation(wide, num_chunks))
            self.mods.append(Modulation(config.num_residual_units, num_chunks))

    @property
    def receptive_radius(self) -> int:
        return self.backbone.receptive_radius

    def forward(self, x: torch.Tensor, chunk_ids: torch.Tensor) -> torch.Tensor:
        w = self.backbone
        x = x - self.config.image_mean
        h = w.head(x)
        for i, block in enumerate(w.body[1:-1]):
            conv1, relu, conv2 = block.body
            y = relu(self.mods[2 * i](conv1(h), chunk_ids))
            h = h + self.mods[2 * i + 1](conv2(y), chunk_ids)
        return w.tail(h, x)

    @torch.no_grad()
    def fold(self, chunk: int) -> WDSR:
        """A plain WDSR (weight norm folded) that computes this model for `chunk`."""
        # a fresh model, not a deepcopy: copies share the parametrized class, and folding one would break both
        model = WDSR(self.config)
        model.load_state_dict(self.backbone.state_dict())
        model = fold_weight_norm(model.to(next(self.parameters()).device))
        for i, block in enumerate(model.body[1:-1]):
            for conv, mod in ((block.body[0], self.mods[2 * i]), (block.body[2], self.mods[2 * i + 1])):
                mult, offset = mod.affine(chunk)
                conv.weight.mul_(mult[:, None, None, None])
                conv.bias.mul_(mult).add_(offset)
        return model
