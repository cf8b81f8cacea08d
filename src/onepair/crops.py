"""Aligned random crops of the example pair(s), sampled in one batched gather.

An input crop of ``crop x crop`` at (row, col) pairs with the output crop of
``s*crop x s*crop`` at (s*row, s*col) for scale factor s. Positions come from
a seeded ``torch.Generator`` (on the CPU, so a seed gives the same crops on
every device); the gather itself runs on the pair's device. With several
examples, each crop first picks its example with probability proportional to
the number of crop positions it holds, so every position is equally likely.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from onepair.images import shape_str, to_tensor
from onepair.pairs import Pair


class CropSampler:
    """Draws batches of aligned crops from ``pairs`` (kept on ``device``)."""

    def __init__(self, pairs: Pair | Sequence[Pair], crop: int, device: torch.device | str = "cpu"):
        pairs = [pairs] if isinstance(pairs, Pair) else list(pairs)
        kinds = {(p.in_channels, p.out_channels, p.scale) for p in pairs}
        if len(kinds) != 1:
            raise ValueError(
                f"examples differ in (input channels, output channels, scale): {sorted(kinds)}; "
                "crops need examples that agree"
            )
        for pair in pairs:
            h, w = pair.input.shape[:2]
            if crop < 1 or crop > min(h, w):
                raise ValueError(
                    f"crop is {crop} but the training part of an example is "
                    f"{shape_str(pair.input)}; expected 1 <= crop <= {min(h, w)}"
                )
        self.crop, self.scale = crop, pairs[0].scale
        self.x = [to_tensor(p.input, device)[0] for p in pairs]  # (Cin, H, W) each
        self.y = [to_tensor(p.output, device)[0] for p in pairs]  # (Cout, sH, sW) each
        positions = [(x.shape[1] - crop + 1) * (x.shape[2] - crop + 1) for x in self.x]
        self._weights = torch.tensor(positions, dtype=torch.float64)
        self._offsets = torch.arange(crop, device=device)
        self._offsets_out = torch.arange(crop * self.scale, device=device)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: (B, Cin, crop, crop) and (B, Cout, s*crop, s*crop)."""
        if len(self.x) == 1:
            return self._sample_one(0, batch, generator)
        which = torch.multinomial(self._weights, batch, replacement=True, generator=generator)
        parts = [
            self._sample_one(i, int(n), generator)
            for i, n in enumerate(torch.bincount(which, minlength=len(self.x)).tolist())
            if n
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _sample_one(
        self, index: int, batch: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.x[index], self.y[index]
        _, h, w = x.shape
        rows = torch.randint(0, h - self.crop + 1, (batch,), generator=generator)
        cols = torch.randint(0, w - self.crop + 1, (batch,), generator=generator)
        rows, cols = rows.to(x.device), cols.to(x.device)
        return (
            self._gather(x, rows, cols, self._offsets, 1),
            self._gather(y, rows, cols, self._offsets_out, self.scale),
        )

    @staticmethod
    def _gather(
        image: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        offsets: torch.Tensor,
        scale: int,
    ) -> torch.Tensor:
        r = (rows * scale)[:, None] + offsets  # (B, crop)
        c = (cols * scale)[:, None] + offsets  # (B, crop)
        patches = image[:, r[:, :, None], c[:, None, :]]  # (C, B, crop, crop)
        return patches.permute(1, 0, 2, 3).contiguous(memory_format=torch.channels_last)
