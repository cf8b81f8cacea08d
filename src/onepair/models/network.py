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
    """Base of the imitators: subclasses build layers, define :meth:`features`, call :meth:`finish`."""

    in_channels: int
    out_channels: int
    scale: int
    multiple: int  # input sizes the body accepts without padding
    body_span: Span

    def finish(self, features: int, skip: Skip, linear_kernel: int) -> None:
        """Build head and skip after the body; zero the head so the skip alone starts."""
        s, cout, cin = self.scale, self.out_channels, self.in_channels
        self.head = nn.Sequential(nn.Conv2d(features, cout * s * s, 1), nn.PixelShuffle(s))
        skip = Skip(skip)
        if skip is Skip.IDENTITY and (cin != cout or s != 1):
            raise ValueError(
                f"identity skip needs equal channels and scale 1; got {cin} -> {cout} channels "
                f"at scale {s}; use skip='linear' or 'none'"
            )
        self.skip_kind = skip
        self.linear: nn.Module | None = None
        if skip is Skip.LINEAR:
            from onepair.models.linear import LinearFilter

            self.linear = LinearFilter(cin, cout, s, linear_kernel)
        if skip is not Skip.NONE:
            nn.init.zeros_(self.head[0].weight)
            nn.init.zeros_(self.head[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.head(self.features(padded))  # (B, Cout, s*H', s*W')
        y = y[..., : h * self.scale, : w * self.scale]
        if self.skip_kind is Skip.IDENTITY:
            y = y + x
        elif self.linear is not None:
            y = y + self.linear(x)
        return y

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def receptive_field(self) -> Span:
        """Closed-form span of input pixels each output pixel depends on."""
        span = self.body_span
        if self.linear is not None:
            span = span.union(Span().conv(self.linear.kernel))
        return span

    def num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those training updates)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
