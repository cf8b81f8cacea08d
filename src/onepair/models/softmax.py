"""Per-pixel class probabilities: any backbone network followed by a softmax over channels.

A classifier such as the tissue-type teacher outputs ``out_channels``
probabilities per pixel that sum to 1. The softmax must live inside the saved
network so that a loaded run folder (``Imitator.load(...).apply``, the ``run:``
target) returns probabilities, not logits. Training with cross-entropy uses
:meth:`SoftmaxNet.logits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from onepair.models.network import Network, Skip
from onepair.models.unet import UNetConfig


@dataclass(frozen=True)
class SoftmaxConfig:
    """``backbone`` (a UNetConfig, PlainConfig or AttentionConfig) whose output is soft-maxed."""

    backbone: Any = field(default_factory=lambda: UNetConfig(depth=3, width=16, skip=Skip.NONE))

    def __post_init__(self) -> None:
        if getattr(self.backbone, "skip", Skip.NONE) is not Skip.NONE:
            raise ValueError(
                f"SoftmaxConfig backbone has skip={self.backbone.skip.value!r}; a classifier's "
                "logits need skip='none'"
            )


class SoftmaxNet(Network):
    """``softmax(backbone(x), dim=channels)``: (B, Cin, H, W) -> (B, Cout, sH, sW), sums to 1.

    >>> net = SoftmaxNet(SoftmaxConfig(UNetConfig(depth=2, width=4, skip="none")), 3, 3)
    >>> float(net(torch.rand(1, 3, 9, 7)).sum(1).mean())  # doctest: +ELLIPSIS
    1.0...
    """

    def __init__(
        self, config: SoftmaxConfig, in_channels: int = 3, out_channels: int = 3, scale: int = 1
    ):
        super().__init__(config, in_channels, out_channels, scale)
        from onepair.models import build  # the table lives in the package, which imports us

        self.backbone = build(config.backbone, in_channels, out_channels, scale)
        self.multiple = self.backbone.multiple
        self.body_span = self.backbone.receptive_field()
        self.skip_kind, self.linear = Skip.NONE, None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output before the softmax (what cross-entropy takes)."""
        return self.backbone(x)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)
