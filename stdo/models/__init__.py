"""Model registry: factory names -> constructors, timm-style, each with what the commands need to know of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from stdo.models.brvsr import BRVSR, BRVSRConfig
from stdo.models.vinr import VINR, VINRConfig
from stdo.models.wdsr import WDSR, WDSRConfig, fold_weight_norm, load_wdsr

@dataclass(frozen=True)
class ModelEntry:
    build: Callable[..., nn.Module]
    patch: bool  # a single-frame patch-wise WDSR a user picks with --model (on-device methods, stdo-general)
    video: tuple[type, type] | None  # (class, config class) of a video model: its checkpoint names its layout


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, patch: bool = False, video: tuple[type, type] | None = None):
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelEntry(fn, patch, video)
        return fn

    return wrap


@register("wdsr_a", patch=True)
def wdsr_a(scale: int = 4, **overrides) -> WDSR:
    """STDO's model: 16 blocks x 32 units x width 4."""
    return WDSR(WDSRConfig(scale=scale, **overrides))


@register("wdsr_a_mobile", patch=True)
def wdsr_a_mobile(scale: int = 4, **overrides) -> WDSR:
    """A phone-sized WDSR-A: 4 blocks x 16 units x width 4."""
    return WDSR(WDSRConfig(**{"scale": scale, "num_blocks": 4, "num_residual_units": 16, **overrides}))


@register("wdsr_large")
def wdsr_large(scale: int = 4, **overrides) -> WDSR:
    """The "just use a bigger model" option for a server: 16 blocks x 64 units x width 4 (~4.8M parameters)."""
    return WDSR(WDSRConfig(**{"scale": scale, "num_blocks": 16, "num_residual_units": 64, **overrides}))


def _video_config(cls, scale: int, overrides: dict):
    """A video model's config from the WDSR-named overrides of the CLI (--blocks, --units, --width)."""
    names = {"num_blocks": "blocks", "num_residual_units": "channels", "width_multiplier": "width_multiplier"}
    return cls(scale=scale, **{names[k]: v for k, v in overrides.items() if k in names})


@register("brvsr", video=(BRVSR, BRVSRConfig))
def brvsr(scale: int = 4, **overrides) -> BRVSR:
    """Bidirectional recurrent VSR (BasicVSR family, DIS flow): 32 channels, 4 blocks per propagation step."""
    return BRVSR(_video_config(BRVSRConfig, scale, overrides))


@register("vinr", video=(VINR, VINRConfig))
def vinr(scale: int = 4, **overrides) -> VINR:
    """Continuous space-time SR (VideoINR style): two-frame encoder + implicit decoder at any (x, y, t)."""
    return VINR(_video_config(VINRConfig, scale, overrides))


def model_checkpoint(model: nn.Module) -> dict:
    """What model{i}.pt holds: a WDSR's bare state dict (the STDO/WDSR release's format), or for a video model
    {"arch", "config", "state"} (its layout cannot be read off the tensor shapes)."""
    arch = getattr(model, "arch", None)
    if arch in _REGISTRY and _REGISTRY[arch].video:
        return {"arch": arch, "config": model.config.to_dict(), "state": model.state_dict()}
    return model.state_dict()


def load_model(checkpoint: dict) -> nn.Module:
    """Inverse of model_checkpoint (any WDSR checkpoint load_wdsr reads, too)."""
    arch = checkpoint.get("arch") if isinstance(checkpoint, dict) else None
    if isinstance(arch, str):
        if arch not in _REGISTRY or not _REGISTRY[arch].video:
            raise ValueError(f"unknown model architecture {arch!r}")
        cls, config_cls = _REGISTRY[arch].video
        model = cls(config_cls(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state"], strict=True)
        return model
    return load_wdsr(checkpoint)


def list_models(patch: bool | None = None) -> list[str]:
    """The registered names; `patch` True: only the patch-wise WDSRs a user picks with --model."""
    return sorted(name for name, entry in _REGISTRY.items() if patch is None or entry.patch == patch)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name].build(**kwargs)


__all__ = ["BRVSR", "VINR", "WDSR", "WDSRConfig", "create_model", "fold_weight_norm", "list_models", "load_model",
           "load_wdsr", "model_checkpoint", "register"]
