"""An imitator that is the linear path, solved in closed form, and at most a small
refiner trained on top of it.

With ``linear_bins`` > 1 the path is adaptive (:mod:`onepair.models.adaptive`):
filters blended per pixel by gradient strength; ``stage2_kernel`` > 0 adds a second
stage on the input and the first's output (:mod:`onepair.models.cascade`). On the
fidelity benchmark this copies MAXIM denoising, at sigma 15 and 25, better on other
photographs than any U-Net trained on top of a linear path, in seconds instead of
minutes: the networks gain on the example's own held-out blocks and lose on new
images (docs/FIDELITY.md, "The adaptive linear path"). A fit solves the path and
measures it on the held-out blocks; it makes no training steps, unless
``refine_layers`` > 0 adds a small CNN shared across colour channels that learns to
correct the path (:mod:`onepair.models.refine`): ``--preset refined`` (three layers of
32 channels) and ``--preset refined-light`` (five of 8, in the second stage's place).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from onepair.models.network import Network, Skip
from onepair.models.receptive import Span
from onepair.models.refine import ChannelRefiner, joined


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
    # a CNN shared across colour channels that corrects the path (0 layers: none), where
    # input and output have the same channels (onepair.models.refine)
    refine_layers: int = 0
    refine_width: int = 32
    # False: where a refiner is trained, it takes the second stage's place (the path is
    # the first stage alone), which applies faster; where none is, the second stage stays
    refined_stage2: bool = True
    # the first stage's blended filters where a refiner is trained (0: linear_bins); where
    # none is, the path keeps linear_bins (the default: 3 under its refiner, which applies
    # faster, and 5 without one, 0.24 dB better on the staining teacher)
    refined_bins: int = 0

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
        if self.refined_bins < 0:
            raise ValueError(
                f"FilterConfig.refined_bins is {self.refined_bins}; expected >= 1, or 0 for "
                "linear_bins"
            )
        if self.refine_layers < 0 or self.refine_width < 1:
            raise ValueError(
                f"FilterConfig.refine_layers is {self.refine_layers} and refine_width "
                f"{self.refine_width}; expected layers >= 0 (0: no refiner) and width >= 1"
            )


class FilterNet(Network):
    """``output = linear path(x)``, plus the refiner's correction where it has one
    (``refine_layers`` > 0 and as many input as output channels): a trained
    :class:`~onepair.models.refine.ChannelRefiner` that sees ``x`` and the path's
    output. The head exists (as in every imitator) but is frozen at zero and never run."""

    def __init__(
        self, config: FilterConfig, in_channels: int = 3, out_channels: int = 3, scale: int = 1
    ):
        super().__init__(config, in_channels, out_channels, scale)
        self.multiple = 1
        self.body_span = Span()
        refining = bool(config.refine_layers) and in_channels == out_channels
        bins = config.refined_bins if refining and config.refined_bins else config.linear_bins
        self.finish(1, Skip.LINEAR, config.linear_kernel, linear_bins=bins)
        self.head.requires_grad_(False)
        if config.stage2_kernel and (config.refined_stage2 or not refining):
            from onepair.models.cascade import CascadeFilter

            self.linear = CascadeFilter(
                in_channels,
                out_channels,
                scale,
                config.linear_kernel,
                bins,
                config.stage2_kernel,
                config.stage2_bins,
            )
        self.refiner: ChannelRefiner | None = None
        if refining:
            self.refiner = ChannelRefiner(
                in_channels, scale, config.refine_layers, config.refine_width
            )
            self.sees_skip = True
            self.body_span = Span().conv(2 * self.linear.radius + 1)
            for _ in range(config.refine_layers):
                self.body_span = self.body_span.conv(3)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The refiner's correction of ``x`` joined with the path's output
        (:meth:`body_input`); zeros where there is no refiner."""
        if self.refiner is not None:
            return self.refiner(x)
        h, w, s = x.shape[-2], x.shape[-1], self.scale
        return x.new_zeros(x.shape[0], self.out_channels, h * s, w * s)

    def body_input(self, x: torch.Tensor, skip: torch.Tensor | float) -> torch.Tensor:
        if self.refiner is None:
            return x
        return joined(x, skip, self.scale)  # type: ignore[arg-type]

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never run
        raise NotImplementedError("a FilterNet has no body")
