"""WDSR-A (Yu et al. 2018), the model STDO overfits to each chunk.

Layout follows the WDSR/STDO release so their checkpoints load key for key:
body = [head conv 3x3, N residual blocks (conv 3x3 -> ReLU -> conv 3x3, wide
activation inside), tail conv 3x3 to 3·s² channels], skip = [conv 5x5 to 3·s²],
then pixel shuffle. Every conv is weight-normalized. Input and output are RGB in
[0, 1]; the image mean is subtracted on the way in and added on the way out.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize


@dataclass(frozen=True)
class WDSRConfig:
    scale: int = 4
    num_blocks: int = 16
    num_residual_units: int = 32
    width_multiplier: float = 4.0
    image_mean: float = 0.5
    num_channels: int = 3
    bicubic_skip: bool = True  # start the skip branch at bicubic upsampling and the body at zero
    skip_padding: str = "replicate"  # the skip conv at the frame border; the WDSR/STDO release used "zeros"
    frames: int = 1  # LR frames read at once (early fusion, WDSR's temporal_size): 2r+1 centred on the output's

    def to_dict(self) -> dict:
        return asdict(self)


def _wn_conv(cin: int, cout: int, kernel: int, g_init: float, padding_mode: str = "zeros") -> nn.Module:
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode=padding_mode)
    conv = parametrizations.weight_norm(conv)
    with torch.no_grad():  # WDSR's initialization: g constant, bias zero
        conv.parametrizations.weight.original0.fill_(g_init)
        conv.bias.zero_()
    return conv


def cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """The cubic convolution kernel (a = -0.5: MATLAB's imresize and PIL)."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def bicubic_phase_taps(scale: int, radius: int = 2) -> torch.Tensor:
    """[scale, 2·radius+1] weights over LR offsets -radius..radius for each output phase of x`scale` bicubic."""
    centres = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    return cubic(centres[:, None] - offsets[None, :])


@torch.no_grad()
def _init_as_bicubic(conv: nn.Module, channels: int, scale: int, source: int = 0) -> None:
    """Set a weight-normed 5x5 conv (-> channels·s², before PixelShuffle) to bicubic upsampling of its input
    channels source .. source+channels-1 (the centre frame of a multi-frame input).

    Bicubic at an integer scale is, per output phase, a separable 4-tap filter inside a
    5x5 window, so the skip branch represents it exactly; its conv repeats the edge
    pixels (replicate padding) as bicubic does, so this holds at the frame border too.
    """
    taps = bicubic_phase_taps(scale)
    weight = torch.zeros(channels * scale * scale, conv.parametrizations.weight.original1.shape[1], 5, 5,
                         dtype=torch.float64)
    for c in range(channels):
        for py in range(scale):
            for px in range(scale):
                weight[c * scale * scale + py * scale + px, source + c] = torch.outer(taps[py], taps[px])
    weight = weight.float()
    conv.parametrizations.weight.original1.copy_(weight)
    conv.parametrizations.weight.original0.copy_(weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    conv.bias.zero_()


class Block(nn.Module):
    """Wide-activation residual block: x + conv(relu(conv(x)))."""

    def __init__(self, units: int, width_multiplier: float, res_scale: float) -> None:
        super().__init__()
        wide = int(units * width_multiplier)
        self.body = nn.Sequential(_wn_conv(units, wide, 3, 2.0), nn.ReLU(inplace=True), _wn_conv(wide, units, 3, res_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class WDSR(nn.Module):
    def __init__(self, config: WDSRConfig = WDSRConfig()) -> None:
        super().__init__()
        self.config = config
        c, s, units = config.num_channels, config.scale, config.num_residual_units
        out, cin = c * s * s, c * config.frames
        res_scale = 1 / math.sqrt(config.num_blocks) if config.num_blocks else 1.0
        self.body = nn.Sequential(
            _wn_conv(cin, units, 3, 1.0),
            *[Block(units, config.width_multiplier, res_scale) for _ in range(config.num_blocks)],
            _wn_conv(units, out, 3, 1.0),
        )
        # replicate padding keeps a new model close to bicubic at the frame border too; the release's zero
        # padding cost an untrained model ~0.5 dB on small frames (checkpoints in its format load with it)
        self.skip = nn.Sequential(_wn_conv(cin, out, 5, 1.0, padding_mode=config.skip_padding))
        self.shuf = nn.PixelShuffle(s)
        if config.bicubic_skip:
            _init_as_bicubic(self.skip[0], c, s, source=c * (config.frames // 2))
            with torch.no_grad():
                self.body[-1].parametrizations.weight.original0.zero_()

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context an output pixel depends on, on each side."""
        return max(2 * self.config.num_blocks + 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - self.config.image_mean
        return self.tail(self.body[1:-1](self.head(x)), x)

    # Under autocast the head conv, the tail conv, the skip branch and the sum run in fp32:
    # they carry the picture itself, and bf16's 8-bit mantissa puts ~0.2 grey levels of
    # noise on the input and on every output pixel. With only the residual blocks in bf16,
    # 400 bf16 steps on a small clip reached 44.75 dB (fp32 training: 45.04; all in bf16:
    # 42.81). The blocks hold nearly all of the compute.

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The first conv, on the input minus the image mean."""
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.body[0](x.float())
        return self.body[0](x)

    def tail(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Last conv of the blocks' output h, plus the skip branch of x (input minus mean), shuffled, mean back."""
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.shuf(self.body[-1](h.float()) + self.skip(x.float())) + self.config.image_mean
        return self.shuf(self.body[-1](h) + self.skip(x)) + self.config.image_mean


def fold_weight_norm(model: nn.Module) -> nn.Module:
    """Replace every weight-norm parametrization by its plain weight (in place), for export."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


# ---------------------------------------------------------------------------- checkpoints

_G, _V = "parametrizations.weight.original0", "parametrizations.weight.original1"


def unwrap_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: a bare one, or under 'model_state_dict' / 'state_dict',
    with DataParallel's 'module.' prefixes dropped."""
    state = checkpoint
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("no state dict of tensors found in the checkpoint")
    return {k.removeprefix("module."): v for k, v in state.items()}


def to_parametrized_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map legacy weight-norm keys (weight_g/weight_v) and folded weights to this model's keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        if name == "weight_g":
            out[f"{prefix}.{_G}"] = value
        elif name == "weight_v":
            out[f"{prefix}.{_V}"] = value
        elif name == "weight" and value.dim() == 4:  # folded: g = ‖w‖ per output channel, v = w
            norm = value.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            out[f"{prefix}.{_G}"] = norm
            out[f"{prefix}.{_V}"] = torch.where(norm > 0, value, torch.ones_like(value))  # all-zero rows: any v, g = 0
        else:
            out[key] = value
    return out


def infer_config(state: dict[str, torch.Tensor], image_mean: float = 0.5) -> WDSRConfig:
    """Read blocks, units, width and scale off the tensor shapes of a WDSR state dict.

    Legacy weight_g/weight_v keys mark the WDSR/STDO release, whose skip conv pads with
    zeros; this toolkit writes parametrized or folded weights and pads it by replication.
    """
    release = any(k.endswith(".weight_g") for k in state)
    state = to_parametrized_keys(state)
    head = state[f"body.0.{_V}"]
    units, inputs = head.shape[0], head.shape[1]
    channels = 3 if inputs % 3 == 0 else inputs  # RGB frames, 2r+1 of them for a multi-frame model
    blocks = sum(1 for k in state if re.fullmatch(rf"body\.\d+\.body\.0\.{re.escape(_V)}", k))
    wide = state[f"body.1.body.0.{_V}"].shape[0] if blocks else units
    out = state[f"skip.0.{_V}"].shape[0]
    scale = math.isqrt(out // channels)
    if scale * scale * channels != out:
        raise ValueError(f"skip conv has {out} outputs, not channels x scale^2")
    return WDSRConfig(scale, blocks, units, wide / units, image_mean, channels,
                      skip_padding="zeros" if release else "replicate", frames=inputs // channels)


def load_wdsr(checkpoint: dict, config: WDSRConfig | None = None) -> WDSR:
    """Build a WDSR from a checkpoint in the STDO/WDSR release format or this toolkit's."""
    state = unwrap_state_dict(checkpoint)
    config = config or infer_config(state)
    state = to_parametrized_keys(state)
    model = WDSR(config)
    model.load_state_dict(state, strict=True)
    return model
