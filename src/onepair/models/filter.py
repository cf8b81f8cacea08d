"""An imitator that is only the linear path: solved in closed form, nothing trained.

With ``linear_bins`` > 1 the path is adaptive (:mod:`onepair.models.adaptive`):
filters blended per pixel by gradient strength; ``stage2_kernel`` > 0 adds a second
stage on the input and the first's output (:mod:`onepair.models.cascade`). On the
fidelity benchmark this copies MAXIM denoising, at sigma 15 and 25, better on other
photographs than any U-Net trained on top of a linear path, in seconds instead of
minutes: the networks gain on the example's own held-out blocks and lose on new
images (docs/FIDELITY.md, "The adaptive linear path"). A fit solves the path and
measures it on the held-out blocks; it makes no training steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from onepair.models.network import Network, Skip
from onepair.models.receptive import Span


@dataclass(frozen=True)
class FilterConfig:
    """The linear path's filter size and its number of blended filters."""

    linear_kernel: int = 15
    linear_bins: int = 5
    # a second stage on the input and the first's output (0: none); the held-out blocks
    # keep it only where it helps (docs/FIDELITY.md: +0.04 to +0.42 dB on six targets,
    # dropped on the seventh)
    stage2_kernel: int = 11
    stage2_bins: int = 3

    def __post_init__(self) -> None:
        if self.stage2_kernel < 0 or (self.stage2_kernel and self.stage2_kernel % 2 == 0):
            raise ValueError(
                f"FilterConfig.stage2_kernel is {self.stage2_kernel}; expected 0 (no second "
                "stage) or odd >= 1"
            )
        if self.stage2_bins < 1:
            raise ValueError(f"FilterConfig.stage2_bins is {self.stage2_bins}; expected >= 1")
        if self.linear_kernel < 1 or self.linear_kernel % 2 == 0:
            raise ValueError(
                f"FilterConfig.linear_kernel is {self.linear_kernel}; expected odd >= 1"
            )
        if self.linear_bins < 1:
            raise ValueError(f"FilterConfig.linear_bins is {self.linear_bins}; expected >= 1")


class FilterNet(Network):
    """``output = linear path(x)``; the head exists (as in every imitator) but is frozen at
    zero and never run, so the network has nothing to train."""

    def __init__(
        self, config: FilterConfig, in_channels: int = 3, out_channels: int = 3, scale: int = 1
    ):
        super().__init__(config, in_channels, out_channels, scale)
        self.multiple = 1
        self.body_span = Span()
        self.finish(1, Skip.LINEAR, config.linear_kernel, linear_bins=config.linear_bins)
        self.head.requires_grad_(False)
        if config.stage2_kernel:
            from onepair.models.cascade import CascadeFilter

            self.linear = CascadeFilter(
                in_channels,
                out_channels,
                scale,
                config.linear_kernel,
                config.linear_bins,
                config.stage2_kernel,
                config.stage2_bins,
            )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        h, w, s = x.shape[-2], x.shape[-1], self.scale
        return x.new_zeros(x.shape[0], self.out_channels, h * s, w * s)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never run
        raise NotImplementedError("a FilterNet has no body")
