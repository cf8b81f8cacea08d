"""Imitator networks and their receptive-field arithmetic.

``ARCHITECTURES`` is the one table of names: a config class and the network it
builds. ``build(config, in_channels, out_channels, scale)`` picks the row by the
config's type.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from onepair.models.network import Network, Skip
from onepair.models.plain import PlainCNN, PlainConfig
from onepair.models.receptive import Span
from onepair.models.unet import UNet, UNetConfig

ARCHITECTURES: dict[str, tuple[type, type[Network]]] = {
    "unet": (UNetConfig, UNet),
    "plain": (PlainConfig, PlainCNN),
}

ModelConfig = UNetConfig | PlainConfig


def build(config: ModelConfig, in_channels: int, out_channels: int, scale: int = 1) -> Network:
    """The network for ``config`` with the given channels and scale factor."""
    for config_type, network in ARCHITECTURES.values():
        if isinstance(config, config_type):
            return network(config, in_channels, out_channels, scale)
    raise TypeError(f"no architecture for config {config!r}")


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """``{"architecture": name, **fields}``, JSON-ready."""
    name = next(n for n, (t, _) in ARCHITECTURES.items() if isinstance(config, t))
    fields = {k: (v.value if isinstance(v, Skip) else v) for k, v in asdict(config).items()}
    return {"architecture": name, **fields}


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`; unknown names and fields list the valid ones."""
    data = dict(data)
    name = data.pop("architecture", None)
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture is {name!r}; expected one of {', '.join(ARCHITECTURES)}")
    config_type = ARCHITECTURES[name][0]
    valid = config_type.__dataclass_fields__
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"{name} config has unknown fields {unknown}; valid: {sorted(valid)}")
    return config_type(**data)


__all__ = [
    "ARCHITECTURES",
    "ModelConfig",
    "Network",
    "PlainCNN",
    "PlainConfig",
    "Skip",
    "Span",
    "UNet",
    "UNetConfig",
    "build",
    "config_from_dict",
    "config_to_dict",
]
