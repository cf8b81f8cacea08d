"""A small attention-based restoration network (Swin / Restormer style), for teachers.

The paper asks how a target's architecture changes how well one example copies
it; convolutional nets (U-Net, DnCNN) are one family, attention nets the other.
This one is a short encoder-decoder::

    stem 3x3 conv (width)  ->  2x2 stride-2 conv (2*width)
      -> blocks x [ x + proj(window-attention(dwconv3x3(qkv(norm(x)))))
                    x + gated-dconv-feed-forward(norm(x)) ]
    -> 2x2 transposed conv (width) -> concat stem -> 3x3 conv -> shared head and skip

Attention is multi-head self-attention among the ``window x window`` pixels of
non-overlapping windows of the half-resolution map; every other block shifts
the window grid by ``window // 2`` (Swin), so information crosses window
borders. The depthwise 3x3 convolutions in the query/key/value path and the
feed-forward give the attention its sense of position (Restormer's "Dconv").
Norms are per-pixel layer norms over channels: no statistic spans the image.

Receptive field: windowed attention keeps it finite and this module returns it
exactly as an upper bound: each attention layer lets a pixel see up to
``window - 1`` half-resolution pixels on either side (``2*(window-1)`` input
pixels), so four blocks of window 8 see about 130 input pixels each way.
Restormer's global (transposed channel) attention would make every output
depend on the whole image; windows were chosen instead so that tiled inference
stays exact (the window grid is aligned by :attr:`multiple` ``= 2 * window``) and
the receptive-field studies have a finite answer. The result depends on the
window grid's phase, as a U-Net's does on its down-sampling phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from onepair.models.network import Network, Skip
from onepair.models.receptive import Span


@dataclass(frozen=True)
class AttentionConfig:
    """Shape of the attention net; ``2 * width`` must be divisible by ``heads``."""

    width: int = 32
    blocks: int = 4
    heads: int = 2
    window: int = 8
    expansion: float = 2.0
    skip: Skip = Skip.LINEAR
    linear_kernel: int = 15
    linear_bins: int = 1  # > 1: the adaptive linear path (onepair.models.adaptive)

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", Skip(self.skip))
        for name in ("width", "blocks", "heads", "linear_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"AttentionConfig.{name} is {getattr(self, name)}; expected >= 1")
        if (2 * self.width) % self.heads:
            raise ValueError(
                f"AttentionConfig: 2*width = {2 * self.width} channels cannot be split into "
                f"{self.heads} heads; choose heads dividing {2 * self.width}"
            )
        if self.window < 2:
            raise ValueError(f"AttentionConfig.window is {self.window}; expected >= 2")
        if self.expansion <= 0:
            raise ValueError(f"AttentionConfig.expansion is {self.expansion}; expected > 0")


class _ChannelNorm(nn.Module):
    """Layer norm over the channels of each pixel of a (B, C, H, W) map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _to_windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, C, H, W) with H, W multiples of w -> (B * H/w * W/w, w*w, C)."""
    b, c, h, wd = x.shape
    x = x.reshape(b, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, c)


def _from_windows(t: torch.Tensor, b: int, h: int, wd: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows`."""
    c = t.shape[-1]
    t = t.reshape(b, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4)
    return t.reshape(b, c, h, wd)


class _Block(nn.Module):
    """Window self-attention then a gated depthwise-conv feed-forward, both residual."""

    def __init__(self, channels: int, heads: int, window: int, shift: bool, expansion: float):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, (window // 2 if shift else 0)
        self.norm1 = _ChannelNorm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.qkv_dw = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        hidden = max(1, round(channels * expansion))
        self.norm2 = _ChannelNorm(channels)
        self.ffn_in = nn.Conv2d(channels, 2 * hidden, 1)
        self.ffn_dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.ffn_out = nn.Conv2d(hidden, channels, 1)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """(B, 3C, H, W) queries/keys/values -> (B, C, H, W), attention within windows."""
        b, c3, h, wd = qkv.shape
        w, s = self.window, self.shift
        valid = torch.ones(1, 1, h, wd, dtype=qkv.dtype, device=qkv.device)
        if s:  # shifted grid: pad so that window borders fall w/2 further on
            pads = (s, w - s, s, w - s)
            qkv, valid = F.pad(qkv, pads), F.pad(valid, pads)
        hp, wp = qkv.shape[-2:]
        tokens = _to_windows(qkv, w)  # (B*nW, w*w, 3C)
        q, k, v = tokens.reshape(tokens.shape[0], w * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = None
        if s:  # padded pixels are no keys: (nW, 1, 1, w*w) repeated over the batch
            keys = _to_windows(valid, w)[:, None, None, :, 0] > 0.5
            mask = keys.repeat(b, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B*nW, heads, w*w, C/h)
        out = _from_windows(out.transpose(1, 2).reshape(-1, w * w, c3 // 3), b, hp, wp, w)
        return out[..., s : s + h, s : s + wd] if s else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.proj(self.attend(self.qkv_dw(self.qkv(self.norm1(x)))))
        gate, value = self.ffn_dw(self.ffn_in(self.norm2(x))).chunk(2, dim=1)
        return x + self.ffn_out(F.gelu(gate) * value)


class AttentionNet(Network):
    """Attention net from ``in_channels`` to ``out_channels`` at integer ``scale``.

    >>> net = AttentionNet(AttentionConfig(width=8, blocks=2, window=4), 1, 3)
    >>> net(torch.zeros(1, 1, 37, 31)).shape
    torch.Size([1, 3, 37, 31])
    """

    def __init__(
        self, config: AttentionConfig, in_channels: int = 3, out_channels: int = 3, scale: int = 1
    ):
        super().__init__(config, in_channels, out_channels, scale)
        c, w = config.width, config.window
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down = nn.Conv2d(c, 2 * c, 2, stride=2)
        self.blocks = nn.Sequential(
            *(
                _Block(2 * c, config.heads, w, shift=i % 2 == 1, expansion=config.expansion)
                for i in range(config.blocks)
            )
        )
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.fuse = nn.Conv2d(2 * c, c, 3, padding=1)
        self.multiple = 2 * w  # whole windows at half resolution, grid aligned across tiles
        self.body_span = self._span()
        self.finish(c, config.skip, config.linear_kernel, linear_bins=config.linear_bins)

    def _span(self) -> Span:
        stem = Span().conv(3)
        span = stem.down(2)
        for _ in range(self.config.blocks):
            # dwconv 3x3, attention within a window (at most w-1 away), feed-forward dwconv 3x3
            span = span.conv(3).conv(2 * self.config.window - 1).conv(3)
        return span.up(2).union(stem).conv(3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        s = F.gelu(self.stem(x))  # (B, width, H, W)
        y = self.blocks(self.down(s))  # (B, 2*width, H/2, W/2)
        y = self.up(y)  # (B, width, H, W)
        return F.gelu(self.fuse(torch.cat([y, s], dim=1)))  # (B, width, H, W)
