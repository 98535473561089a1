"""BRVSR: bidirectional recurrent video SR, a compact member of the BasicVSR family (Chan et al., CVPR 2021).

Features propagate over the clip twice. Backward, from the last frame to the first: the state
of frame t+1 is warped onto frame t by the optical flow t -> t+1 and refined with frame t by a
stack of WDSR blocks. Forward, from the first frame to the last: the state of frame t-1 is
warped onto t by the flow t -> t-1 and refined with frame t and the backward state of t; the
forward state is upsampled (conv -> pixel shuffle) on top of a bicubic skip of frame t.

As in BasicVSR, alignment is flow-based warping (grid_sample). Unlike it, the flow is OpenCV's
DIS on the LR frames (stdo.flow), computed outside the network: no pretrained flow net (SPyNet)
is reachable here. A new model is exact bicubic upsampling (the skip starts as bicubic, the
upsampler's last conv at zero), as every model of this toolkit.

One step of each recurrence is a module of its own (`backward_step`, `forward_step`), so each
exports as one ONNX graph and a server runs the recurrence with any runtime (`run_recurrence`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from stdo.flow import warp
from stdo.models.wdsr import Block, _init_as_bicubic, _wn_conv


@dataclass(frozen=True)
class BRVSRConfig:
    scale: int = 4
    channels: int = 32  # feature channels of each propagation state
    blocks: int = 4  # WDSR blocks per propagation step
    width_multiplier: float = 2.0
    image_mean: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


class _Cell(nn.Module):
    """conv(inputs -> channels) then WDSR blocks: one propagation step's refinement."""

    def __init__(self, cin: int, config: BRVSRConfig) -> None:
        super().__init__()
        res_scale = 1 / max(config.blocks, 1) ** 0.5
        self.body = nn.Sequential(_wn_conv(cin, config.channels, 3, 1.0), nn.ReLU(inplace=True),
                                  *[Block(config.channels, config.width_multiplier, res_scale)
                                    for _ in range(config.blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class BackwardStep(nn.Module):
    """(frame t [N,3,h,w] in [0,1], state of t+1 [N,C,h,w], flow t -> t+1 [N,2,h,w]) -> state of t."""

    def __init__(self, config: BRVSRConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = _Cell(3 + config.channels, config)

    def forward(self, x: torch.Tensor, state: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.cell(torch.cat((x - self.config.image_mean, warp(state, flow)), 1))


class ForwardStep(nn.Module):
    """(frame t, forward state of t-1, flow t -> t-1, backward state of t) -> (forward state of t, SR frame t)."""

    def __init__(self, config: BRVSRConfig) -> None:
        super().__init__()
        self.config = config
        c, s = config.channels, config.scale
        self.cell = _Cell(3 + 2 * c, config)
        self.up = nn.Sequential(_wn_conv(c, c, 3, 1.0), nn.ReLU(inplace=True), _wn_conv(c, 3 * s * s, 3, 1.0))
        self.skip = _wn_conv(3, 3 * s * s, 5, 1.0, padding_mode="replicate")
        self.shuf = nn.PixelShuffle(s)
        _init_as_bicubic(self.skip, 3, s)
        with torch.no_grad():
            self.up[-1].parametrizations.weight.original0.zero_()

    def forward(self, x: torch.Tensor, state: torch.Tensor, flow: torch.Tensor,
                backward_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x - self.config.image_mean
        state = self.cell(torch.cat((x, warp(state, flow), backward_state), 1))
        residual = self.up(state)
        if torch.is_autocast_enabled(x.device.type):  # the picture itself stays in fp32 (see WDSR.tail)
            with torch.autocast(x.device.type, enabled=False):
                return state, self.shuf(residual.float() + self.skip(x.float())) + self.config.image_mean
        return state, self.shuf(residual + self.skip(x)) + self.config.image_mean


Step = Callable[..., torch.Tensor]


def run_recurrence(frames: torch.Tensor, forward_flows: torch.Tensor, backward_flows: torch.Tensor,
                   backward_step: Step, forward_step: Step, channels: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (t, SR frame t [N,3,s·h,s·w]) over frames [N,T,3,h,w] in [0,1], with forward_flows[:, t] the flow
    t -> t+1 and backward_flows[:, t] the flow t+1 -> t ([N,T-1,2,h,w]). The steps are torch modules or any
    callables of the same signature (an ONNX runtime session); the backward states of all T frames are kept."""
    n, t, _, h, w = frames.shape
    state = frames.new_zeros(n, channels, h, w)
    still = frames.new_zeros(n, 2, h, w)  # the first step of each direction warps a zero state: any flow
    backward_states = [state] * t
    for i in reversed(range(t)):
        state = backward_step(frames[:, i], state, forward_flows[:, i] if i < t - 1 else still)
        backward_states[i] = state
    state = frames.new_zeros(n, channels, h, w)
    for i in range(t):
        state, sr = forward_step(frames[:, i], state, backward_flows[:, i - 1] if i else still, backward_states[i])
        backward_states[i] = None  # freed as the forward pass goes
        yield i, sr


class BRVSR(nn.Module):
    """The whole model: [N,T,3,h,w] frames + flows -> [N,T,3,s·h,s·w] SR frames (training, evaluation)."""

    arch = "brvsr"

    def __init__(self, config: BRVSRConfig = BRVSRConfig()) -> None:
        super().__init__()
        self.config = config
        self.backward_step = BackwardStep(config)
        self.forward_step = ForwardStep(config)

    def forward(self, frames: torch.Tensor, forward_flows: torch.Tensor, backward_flows: torch.Tensor) -> torch.Tensor:
        out = [sr for _, sr in run_recurrence(frames, forward_flows, backward_flows, self.backward_step,
                                              self.forward_step, self.config.channels)]
        return torch.stack(out, 1)
