"""Plain fully-convolutional imitator whose receptive field is set exactly.

``depth = (receptive_field - 1) / (kernel_size - 1)`` stride-1 convolutions of
``width`` channels with ReLU (and batch norm, DnCNN-style, if asked): the
receptive field is exactly ``receptive_field x receptive_field``, which the
receptive-field ablation (paper Fig. 3a) needs. The paper-prototype preset is
this net at 17 layers (35 x 35) with batch norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from onepair.models.network import Network, Skip
from onepair.models.receptive import Span


@dataclass(frozen=True)
class PlainConfig:
    """Shape of a plain CNN imitator; ``receptive_field`` must be odd and reachable."""

    receptive_field: int = 31
    width: int = 32
    kernel_size: int = 3
    batchnorm: bool = False
    skip: Skip = Skip.LINEAR
    linear_kernel: int = 15
    linear_bins: int = 1  # > 1: the adaptive linear path (onepair.models.adaptive)

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", Skip(self.skip))
        k, r = self.kernel_size, self.receptive_field
        if k < 3 or k % 2 == 0:
            raise ValueError(f"PlainConfig.kernel_size is {k}; expected odd >= 3")
        if r < k or (r - 1) % (k - 1):
            raise ValueError(
                f"PlainConfig.receptive_field is {r}; with kernel_size {k} it must be "
                f"1 + n*{k - 1} for n >= 1 layers (e.g. {k}, {2 * k - 1}, {3 * k - 2})"
            )
        for name in ("width", "linear_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"PlainConfig.{name} is {getattr(self, name)}; expected >= 1")

    @property
    def depth(self) -> int:
        return (self.receptive_field - 1) // (self.kernel_size - 1)


class PlainCNN(Network):
    """``depth`` convolutions, then the shared head and skip.

    >>> PlainCNN(PlainConfig(receptive_field=31)).receptive_field().size
    31
    """

    def __init__(
        self, config: PlainConfig, in_channels: int = 3, out_channels: int = 3, scale: int = 1
    ):
        super().__init__(config, in_channels, out_channels, scale)
        k, c = config.kernel_size, config.width
        layers: list[nn.Module] = []
        span = Span()
        for i in range(config.depth):
            layers.append(
                nn.Conv2d(
                    in_channels if i == 0 else c,
                    c,
                    k,
                    padding=k // 2,
                    bias=not (config.batchnorm and i > 0),
                )
            )
            if config.batchnorm and i > 0:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU(inplace=True))
            span = span.conv(k)
        self.layers = nn.Sequential(*layers)
        for layer in self.layers:
            if isinstance(layer, nn.Conv2d):
                # He initialisation keeps the signal's scale through a deep ReLU stack;
                # PyTorch's default shrinks it about 3x per layer, so a 15-layer body
                # starts with vanishing features and barely trains.
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
        self.multiple = 1
        self.body_span = span
        self.finish(c, config.skip, config.linear_kernel, linear_bins=config.linear_bins)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, width, H, W)
