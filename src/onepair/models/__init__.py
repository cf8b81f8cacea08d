"""Imitator networks and their receptive-field arithmetic.

``ARCHITECTURES`` is the one table of names: a config class and the network it
builds. ``build(config, in_channels, out_channels, scale)`` picks the row by the
config's type. A config may hold another config (``SoftmaxConfig.backbone``);
:func:`config_to_dict` nests it as a dict with its own ``"architecture"``.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

import torch

from onepair.models.attention import AttentionConfig, AttentionNet
from onepair.models.filter import FilterConfig, FilterNet
from onepair.models.network import Network, Skip
from onepair.models.plain import PlainCNN, PlainConfig
from onepair.models.receptive import Span
from onepair.models.softmax import SoftmaxConfig, SoftmaxNet
from onepair.models.unet import UNet, UNetConfig

ARCHITECTURES: dict[str, tuple[type, type[Network]]] = {
    "unet": (UNetConfig, UNet),
    "plain": (PlainConfig, PlainCNN),
    "attention": (AttentionConfig, AttentionNet),
    "softmax": (SoftmaxConfig, SoftmaxNet),
    "filter": (FilterConfig, FilterNet),
}

ModelConfig = UNetConfig | PlainConfig | AttentionConfig | SoftmaxConfig | FilterConfig


def build(config: ModelConfig, in_channels: int, out_channels: int, scale: int = 1) -> Network:
    """The network for ``config`` with the given channels and scale factor.

    Its 4-d weights are channels-last, the layout in which PyTorch's CPU
    convolutions run fastest here (about 1.2-1.6x for training steps and apply,
    docs/PERFORMANCE.md); inputs in either layout give the same result.
    """
    for config_type, network in ARCHITECTURES.values():
        if isinstance(config, config_type):
            return network(config, in_channels, out_channels, scale).to(
                memory_format=torch.channels_last
            )
    raise TypeError(f"no architecture for config {config!r}")


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """``{"architecture": name, **fields}``, JSON-ready."""
    name = next(n for n, (t, _) in ARCHITECTURES.items() if isinstance(config, t))
    data: dict[str, Any] = {"architecture": name}
    for field in fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Skip):
            value = value.value
        elif is_dataclass(value):
            value = config_to_dict(value)
        data[field.name] = value
    return data


def config_from_dict(data: dict[str, Any], path: str = "model") -> ModelConfig:
    """Inverse of :func:`config_to_dict`, for untrusted data: checked first against
    :data:`onepair.runschema.MODEL_FIELDS` (types, ranges, unknown fields, nested
    configs); every ValueError names the field by ``path`` (``model.backbone.width``)."""
    from onepair.runschema import check_model

    check_model(data, path)
    data = dict(data)
    if data["architecture"] == "unet":  # saved before the field existed: plain ReLU
        data.setdefault("activation", "relu")
    if data["architecture"] in ("unet", "plain", "attention"):  # saved before: one filter
        data.setdefault("linear_bins", 1)
    config_type = ARCHITECTURES[data.pop("architecture")][0]
    nested = {k: config_from_dict(v, f"{path}.{k}") for k, v in data.items() if isinstance(v, dict)}
    try:
        return config_type(**{**data, **nested})
    except ValueError as error:  # constraints between fields, checked by the config itself
        raise ValueError(f"{path}: {error}") from None


__all__ = [
    "ARCHITECTURES",
    "AttentionConfig",
    "AttentionNet",
    "FilterConfig",
    "FilterNet",
    "ModelConfig",
    "Network",
    "PlainCNN",
    "PlainConfig",
    "Skip",
    "SoftmaxConfig",
    "SoftmaxNet",
    "Span",
    "UNet",
    "UNetConfig",
    "build",
    "config_from_dict",
    "config_to_dict",
]
