"""What every imitator shares: a feature body, an output head and a skip path.

``output = head(body(x)) + skip(x)``. The head is a 1x1 convolution to
``out_channels * scale**2`` channels followed by a pixel shuffle, so channel
changes (1 -> 3 for virtual staining) and integer up-scaling (super-resolution)
come for free. The skip is none, the identity (same channels, no scaling), or a
linear shift-equivariant filter solved in closed form by least squares on the
example (:mod:`onepair.models.linear`) and kept fixed, so training learns only
the nonlinear remainder -- for a linear target the imitator is exact from the
first step (Theorem 1 of the paper, DESIGN.md).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from onepair.models.receptive import Span


class Skip(str, Enum):
    """The path added to the network's output."""

    NONE = "none"
    IDENTITY = "identity"
    LINEAR = "linear"


class Network(nn.Module):
    """Base of the imitators: subclasses build layers, define ``features``, call ``finish``."""

    in_channels: int
    out_channels: int
    scale: int
    multiple: int  # input sizes the body accepts without padding
    body_span: Span
    # the body sees the skip path's output too (body_input): its crops are drawn from the
    # input joined with the skip path's output on the whole example
    sees_skip: bool = False

    def __init__(self, config: Any, in_channels: int, out_channels: int, scale: int = 1):
        super().__init__()
        self.config, self.in_channels, self.out_channels, self.scale = (
            config,
            in_channels,
            out_channels,
            scale,
        )

    def finish(
        self,
        features: int,
        skip: Skip,
        linear_kernel: int,
        shuffle: int = 1,
        linear_bins: int = 1,
    ) -> None:
        """Build head and skip after the body; zero the head so the skip alone starts.

        ``shuffle`` is the body's down-sampling of its features (1: full
        resolution); the head's pixel shuffle undoes it along with the scale.
        ``linear_bins`` > 1 makes the linear path adaptive
        (:mod:`onepair.models.adaptive`).
        """
        s, cout, cin = self.scale, self.out_channels, self.in_channels
        up = s * shuffle
        shuffle_back = nn.PixelShuffle(up) if up > 1 else nn.Identity()  # a copy at 1
        self.head = nn.Sequential(nn.Conv2d(features, cout * up * up, 1), shuffle_back)
        skip = Skip(skip)
        if skip is Skip.IDENTITY and (cin != cout or s != 1):
            raise ValueError(
                f"identity skip needs equal channels and scale 1; got {cin} -> {cout} channels "
                f"at scale {s}; use skip='linear' or 'none'"
            )
        self.skip_kind = skip
        self.linear: nn.Module | None = None
        if skip is Skip.LINEAR and linear_bins > 1:
            from onepair.models.adaptive import AdaptiveFilter

            self.linear = AdaptiveFilter(cin, cout, s, linear_kernel, linear_bins)
        elif skip is Skip.LINEAR:
            from onepair.models.linear import LinearFilter

            self.linear = LinearFilter(cin, cout, s, linear_kernel)
        if skip is not Skip.NONE:
            nn.init.zeros_(self.head[0].weight)
            nn.init.zeros_(self.head[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        return self.residual(self.body_input(x, skip)) + skip

    def body_input(self, x: torch.Tensor, skip: torch.Tensor | float) -> torch.Tensor:
        """What :meth:`residual` takes: ``x``, or for a body that sees the skip path's
        output (``sees_skip``) ``x`` joined with it."""
        return x

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``head(body(x))``: what the network adds to the skip path; training fits this."""
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.head(self.features(padded))  # (B, Cout, s*H', s*W')
        return y[..., : h * self.scale, : w * self.scale]

    def skip(self, x: torch.Tensor) -> torch.Tensor | float:
        """The skip path's output (zero padding at the borders of ``x``)."""
        if self.skip_kind is Skip.IDENTITY:
            return x
        if self.linear is not None:
            return self.linear(x)
        return 0.0

    @torch.no_grad()
    def skip_image(self, x: torch.Tensor) -> torch.Tensor | float:
        """The skip path on a whole (1, C, H, W) image with reflect padding, as in apply.

        Training crops of ``target - skip_image(input)`` teach the body the
        remainder with correct context at crop borders.
        """
        if self.linear is None:
            return self.skip(x)
        r = self.linear.radius
        padded = F.pad(x, (r, r, r, r), mode="reflect") if r and min(x.shape[-2:]) > r else x
        y = self.linear(padded)
        if padded is x:
            return y
        s = self.scale
        return y[..., s * r : y.shape[-2] - s * r, s * r : y.shape[-1] - s * r]

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def receptive_field(self) -> Span:
        """Closed-form span of input pixels each output pixel depends on."""
        span = self.body_span
        if self.linear is not None:
            span = span.union(Span().conv(2 * self.linear.radius + 1))
        return span

    def num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those training updates)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
