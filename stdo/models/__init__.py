"""Model registry: factory names -> constructors, timm-style."""

from __future__ import annotations

from typing import Callable

from torch import nn

from stdo.models.wdsr import WDSR, WDSRConfig, fold_weight_norm, load_wdsr

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn

    return wrap


@register("wdsr_a")
def wdsr_a(scale: int = 4, **overrides) -> WDSR:
    """STDO's model: 16 blocks x 32 units x width 4."""
    return WDSR(WDSRConfig(scale=scale, **overrides))


@register("wdsr_a_mobile")
def wdsr_a_mobile(scale: int = 4, **overrides) -> WDSR:
    """A phone-sized WDSR-A: 4 blocks x 16 units x width 4."""
    return WDSR(WDSRConfig(**{"scale": scale, "num_blocks": 4, "num_residual_units": 16, **overrides}))


@register("wdsr_large")
def wdsr_large(scale: int = 4, **overrides) -> WDSR:
    """The "just use a bigger model" option for a server: 16 blocks x 64 units x width 4 (~4.8M parameters)."""
    return WDSR(WDSRConfig(**{"scale": scale, "num_blocks": 16, "num_residual_units": 64, **overrides}))


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name](**kwargs)


__all__ = ["WDSR", "WDSRConfig", "create_model", "fold_weight_norm", "list_models", "load_wdsr", "register"]
