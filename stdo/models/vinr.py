"""VINR: continuous space-time SR in the style of VideoINR (Chen et al., CVPR 2022).

An encoder (WDSR blocks) reads two consecutive LR frames at once and gives a feature map at LR
resolution for each, blended by the time asked for. An implicit decoder is queried at any output point (x, y, t): it reads the features
of the LR pixel nearest to (x, y), the offset of the point from that pixel's centre, the size of
an output pixel in LR pixels (LIIF's cell), and the time t in [0, 1] between the two frames, and
returns the colour there as a residual over the bicubic upsampling of the frames blended at t.
The decoder's first layer is affine in the offset with slopes read from the features: with
the offset only a plain input (LIIF), the sub-pixel detail a pixel-shuffle WDSR learns in a few
hundred steps was not learnt at all in 600 here.
So one model upscales by any factor, integer or not, and synthesises frames between its inputs.

Compared with VideoINR: the decoder conditions on t directly instead of decoding a motion flow
that warps the features to time t, and queries one nearest feature (with its 3x3 neighbourhood,
as LIIF's feature unfolding) instead of an ensemble of four. The decoder's first layer over the
3x3 neighbourhood is computed as a 3x3 conv at LR resolution before the gather (the same linear
map, ~9x less work than unfolding at output resolution).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stdo.models.wdsr import Block, _wn_conv


@dataclass(frozen=True)
class VINRConfig:
    scale: int = 4  # the RUN's scale: what it trains for most; any scale can be queried
    channels: int = 32
    blocks: int = 4
    width_multiplier: float = 2.0
    hidden: int = 64  # width of the implicit decoder (an MLP, run as 1x1 convs)
    image_mean: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


def _centres(out: int, size: int, device: torch.device) -> torch.Tensor:
    """LR coordinates (pixel centres at 0 .. size-1) of the centres of `out` output pixels spanning the frame."""
    return (torch.arange(out, device=device, dtype=torch.float32) + 0.5) * (size / out) - 0.5


class VINR(nn.Module):
    """(frames t0 and t1 stacked [N,6,h,w] in [0,1], times [N] in [0,1], out_h, out_w) -> [N,3,out_h,out_w]."""

    arch = "vinr"

    def __init__(self, config: VINRConfig = VINRConfig()) -> None:
        super().__init__()
        self.config = config
        c, hidden = config.channels, config.hidden
        res_scale = 1 / max(config.blocks, 1) ** 0.5
        self.encoder = nn.Sequential(_wn_conv(6, c, 3, 1.0),
                                     *[Block(c, config.width_multiplier, res_scale) for _ in range(config.blocks)])
        # the decoder's first layer over each LR pixel's 3x3 features: a value and its slopes along y and x
        self.neighbourhood = nn.Conv2d(c, 3 * hidden, 3, padding=1)
        self.query = nn.Conv2d(5, hidden, 1, bias=False)  # ... and over (dy, dx, cell_y, cell_x, t)
        self.mlp = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 3, 1))
        with torch.no_grad():  # a new model is the bicubic blend
            self.mlp[-1].weight.zero_()
            self.mlp[-1].bias.zero_()

    def encode(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[N,6,h,w] -> the decoder's first layer over each LR pixel's neighbourhood, [N,3·hidden,h,w] for each
        frame (its value at the pixel's centre and its slopes along y and x; a query's offset scales them).

        Each frame is encoded with the other beside it (the same encoder, the frame's own first), so frame 0 at
        t = 0 and frame 1 at t = 1 are one task; between them the features blend by t (VideoINR warps them by
        a decoded motion flow instead). One shared task learnt several times faster here than one encoding of
        the pair that the decoder had to read differently by t."""
        x = pair - self.config.image_mean
        return (self.neighbourhood(self.encoder(x)),
                self.neighbourhood(self.encoder(torch.cat((x[:, 3:], x[:, :3]), 1))))

    def decode(self, features: tuple[torch.Tensor, torch.Tensor], pair: torch.Tensor, times: torch.Tensor,
               out_h: int, out_w: int,
               rows: tuple[int, int] | None = None, base: torch.Tensor | None = None) -> torch.Tensor:
        """Output rows rows[0]..rows[1]-1 (default all) of the out_h x out_w frame at times [N] (base: the
        whole frame's bicubic blend, if already computed)."""
        n, _, h, w = pair.shape
        device = pair.device
        top, bottom = rows or (0, out_h)
        ys, xs = _centres(out_h, h, device)[top:bottom], _centres(out_w, w, device)
        iy, ix = ys.round().clamp(0, h - 1).long(), xs.round().clamp(0, w - 1).long()
        at = times.to(device, features[0].dtype).view(n, 1, 1, 1)
        gathered = ((1 - at) * features[0] + at * features[1]).index_select(2, iy).index_select(3, ix)  # nearest
        value, slope_y, slope_x = gathered.chunk(3, 1)
        k = bottom - top
        dy, dx = (ys - iy).view(1, 1, k, 1).expand(n, 1, k, out_w), (xs - ix).view(1, 1, 1, out_w).expand(n, 1, k, out_w)
        cell_y = torch.full((n, 1, k, out_w), h / out_h, device=device)
        cell_x = torch.full((n, 1, k, out_w), w / out_w, device=device)
        t = times.to(device, torch.float32).view(n, 1, 1, 1).expand(n, 1, k, out_w)
        query = torch.cat((dy, dx, cell_y, cell_x, t), 1)
        first = value + slope_y * dy.to(value.dtype) + slope_x * dx.to(value.dtype) + self.query(query.to(value.dtype))
        residual = self.mlp(first)
        if base is None:
            base = self.bicubic_blend(pair, times, out_h, out_w)
        return base[:, :, top:bottom] + residual.float()

    @staticmethod
    def bicubic_blend(pair: torch.Tensor, times: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        """(1 - t)·bicubic(frame 0) + t·bicubic(frame 1) at out_h x out_w (a = -0.5, as the toolkit's bicubic)."""
        up = F.interpolate(pair.float(), size=(out_h, out_w), mode="bicubic", antialias=True, align_corners=False)
        t = times.to(pair.device, torch.float32).view(-1, 1, 1, 1)
        return (1 - t) * up[:, :3] + t * up[:, 3:]

    def forward(self, pair: torch.Tensor, times: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        return self.decode(self.encode(pair), pair, times, int(out_h), int(out_w))

    @torch.no_grad()
    def upscale(self, pair: torch.Tensor, times: torch.Tensor, out_h: int, out_w: int, rows_per_tile: int = 256
                ) -> torch.Tensor:
        """As forward, decoding a few output rows at a time: memory bounded at any output size."""
        features, base = self.encode(pair), self.bicubic_blend(pair, times, out_h, out_w)
        return torch.cat([self.decode(features, pair, times, out_h, out_w, (top, min(top + rows_per_tile, out_h)), base)
                          for top in range(0, out_h, rows_per_tile)], 2)
