"""Two adaptive linear paths in a row, the ``filters`` preset's (:mod:`onepair.models.filter`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onepair.models.adaptive import AdaptiveFilter, on_whole
from onepair.models.linear import LinearFilter, as_lists


class CascadeFilter(nn.Module):
    """Two adaptive paths in a row: the second sees the input and the first's output.

    Both are solved in closed form, the first on the example, then the second on the
    input joined with the first's output there (pixel-unshuffled to the input's size
    when the scale is above 1). On the benchmark's denoisers a second stage of three
    11 x 11 filters added 0.0-0.4 dB on other images (docs/FIDELITY.md).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int,
        kernel: int,
        bins: int,
        kernel2: int,
        bins2: int,
    ):
        super().__init__()
        self.kernel, self.scale = kernel, scale
        self.stage1 = _path(in_channels, out_channels, scale, kernel, bins)
        joined = in_channels + out_channels * scale * scale
        self.stage2 = _path(joined, out_channels, scale, kernel2, bins2)
        for part in self.stage2.modules():
            if isinstance(part, LinearFilter):
                part.phased_from = in_channels  # the first stage's output, unshuffled
        self.radius = self.stage1.radius + self.stage2.radius
        # False where the held-out blocks showed the second stage no better than the first
        self.register_buffer("second", torch.tensor(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage2(self._joined(x)) if self.second else self.stage1(x)

    def _joined(self, x: torch.Tensor) -> torch.Tensor:
        z = self.stage1(x)
        if self.scale > 1:
            z = F.pixel_unshuffle(z, self.scale)
        return torch.cat([x, z.to(x.dtype)], 1)

    @torch.no_grad()
    def solve(
        self,
        x: np.ndarray | Sequence[np.ndarray],
        y: np.ndarray | Sequence[np.ndarray],
        ridge: float = 1e-6,
        max_rows: int = 65_536,
        seed: int = 0,
        chunk_rows: int = 4096,
        keep: Sequence[np.ndarray | None] | None = None,
        transforms: Sequence[str] = ("identity",),
    ) -> None:
        """Solve the first stage, then the second on the input and the first's output; keep
        the second only if it does better on the pixels ``keep`` leaves out (when any).
        With ``transforms`` both are solved on the transformed examples too."""
        xs, ys = as_lists(x, y)
        self.stage1.solve(xs, ys, ridge, max_rows, seed, chunk_rows, keep, transforms)
        joined = [self._joined_image(a) for a in xs]
        self.stage2.solve(joined, ys, ridge, max_rows, seed, chunk_rows, keep, transforms)
        self.second.fill_(True)
        if keep is None or all(m is None or m.all() for m in keep):
            return
        errors = np.zeros(2)
        for a, b, j, m in zip(xs, ys, joined, keep, strict=True):
            if m is None:
                continue
            held = np.repeat(np.repeat(~m, self.scale, 0), self.scale, 1)
            for index, (path, image) in enumerate(((self.stage1, a), (self.stage2, j))):
                errors[index] += float(((_whole(path, image) - b)[held] ** 2).sum())
        self.second.fill_(bool(errors[1] < errors[0]))

    def _joined_image(self, x: np.ndarray) -> np.ndarray:
        """The second stage's input (H, W, C) for a whole input, borders reflected."""
        return on_whole(self._joined, x, self.stage1.radius, device=self.second.device)


def _whole(path: nn.Module, x: np.ndarray) -> np.ndarray:
    """``path`` on a whole (H, W, C) input, borders reflected: (s*H, s*W, Cout), clipped."""
    device = next(path.buffers()).device
    return np.clip(on_whole(path, x, path.radius, path.scale, device), 0, 1).astype(np.float64)


def _path(cin: int, cout: int, scale: int, kernel: int, bins: int) -> nn.Module:
    return (
        AdaptiveFilter(cin, cout, scale, kernel, bins)
        if bins > 1
        else LinearFilter(cin, cout, scale, kernel)
    )
