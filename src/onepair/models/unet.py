"""U-Net imitator: the paper's architecture for the imitating network.

Levels of ``convs_per_level`` convolutions (kernel ``kernel_size``, then
``activation``: leaky ReLU by default),
``width * growth**level`` channels (``growth`` 2 doubles them at each level, as the
paper's U-Net does; 1 keeps them all at ``width``, which widens the view of a
small network at little cost: a level at 1/4 the pixels of the one above it
costs 1/4 as much at equal channels), 2x2 stride-2 convolutions down, 2x2 stride-2
transposed convolutions up, skip concatenations, then the shared head and skip
path of :class:`~onepair.models.network.Network`.

With ``unshuffle = f > 1`` the body runs at 1/f resolution: the input's f x f
blocks become channels (pixel unshuffle, as FFDNet does) and the head's pixel
shuffle returns to full resolution. Every layer then costs 1/f**2 per pixel
and the receptive field grows by about f; the full-resolution linear path
keeps the fine linear detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from onepair.models.network import Network, Skip
from onepair.models.receptive import Span

ACTIVATIONS = {
    "leaky-relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "relu": lambda: nn.ReLU(inplace=True),
}


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a U-Net imitator. ``depth`` counts resolutions (1 = no down-sampling).

    The defaults are ``--preset unet``, onepair's default imitator until 2026-11-29
    (docs/PERFORMANCE.md), from the Pareto study of fidelity
    after a 30 s fit against apply throughput: within 0.5 dB of the most faithful
    shape and the fastest full-resolution one to apply (docs/PERFORMANCE.md).
    """

    depth: int = 2
    width: int = 8
    kernel_size: int = 3
    convs_per_level: int = 1
    growth: int = 2
    unshuffle: int = 1
    skip: Skip = Skip.LINEAR
    linear_kernel: int = 15
    linear_bins: int = 1  # > 1: the adaptive linear path (onepair.models.adaptive)
    # "leaky-relu" (slope 0.01): with plain ReLU all 8 channels of the last level of a
    # 2 x 8 net can die early in a fit, which then learns nothing beyond its linear
    # path (docs/FIDELITY.md). Runs saved without this field used "relu".
    activation: str = "leaky-relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", Skip(self.skip))
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"UNetConfig.activation is {self.activation!r}; expected one of "
                + ", ".join(ACTIVATIONS)
            )
        for name in ("depth", "width", "convs_per_level", "growth", "unshuffle", "linear_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"UNetConfig.{name} is {getattr(self, name)}; expected >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"UNetConfig.kernel_size is {self.kernel_size}; expected odd >= 1")


def _block(c_in: int, c_out: int, kernel: int, n: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel, padding=kernel // 2),
            ACTIVATIONS[activation](),
        ]
    return nn.Sequential(*layers)


class UNet(Network):
    """U-Net from ``in_channels`` to ``out_channels`` at integer ``scale``.

    >>> net = UNet(UNetConfig(depth=2, width=8), in_channels=1, out_channels=3)
    >>> net(torch.zeros(1, 1, 37, 31)).shape
    torch.Size([1, 3, 37, 31])
    """

    def __init__(
        self, config: UNetConfig, in_channels: int = 3, out_channels: int = 3, scale: int = 1
    ):
        super().__init__(config, in_channels, out_channels, scale)
        c, k, n, d = config.width, config.kernel_size, config.convs_per_level, config.depth
        f = config.unshuffle
        chans = [c * config.growth**i for i in range(d)]
        self.enc = nn.ModuleList(
            _block(in_channels * f * f if i == 0 else chans[i], chans[i], k, n, config.activation)
            for i in range(d)
        )
        self.down = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 2, stride=2) for i in range(d - 1)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(d - 1)
        )
        self.dec = nn.ModuleList(
            _block(2 * chans[i], chans[i], k, n, config.activation) for i in range(d - 1)
        )
        self.multiple = f * 2 ** (d - 1)
        self.body_span = self._span()
        self.finish(
            chans[0], config.skip, config.linear_kernel, shuffle=f, linear_bins=config.linear_bins
        )

    def _span(self) -> Span:
        k, n, d = self.config.kernel_size, self.config.convs_per_level, self.config.depth
        f = self.config.unshuffle
        span, skips = (Span().down(f) if f > 1 else Span()), []
        for i in range(d):
            for _ in range(n):
                span = span.conv(k)
            if i < d - 1:
                skips.append(span)
                span = span.down(2)
        for i in reversed(range(d - 1)):
            span = span.up(2).union(skips[i])
            for _ in range(n):
                span = span.conv(k)
        return span.up(f) if f > 1 else span

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.config.unshuffle)  # (B, Cin*f*f, H/f, W/f)
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x)  # (B, width*growth^i, H/2^i, W/2^i)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](x)  # (B, width*growth^i, H/2^i, W/2^i)
            x = self.dec[i](torch.cat([x, skips[i]], dim=1))
        return x  # (B, width, H/f, W/f)
