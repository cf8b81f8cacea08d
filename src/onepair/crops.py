"""Aligned random crops of the example pair, sampled in one batched gather.

An input crop of ``crop x crop`` at (row, col) pairs with the output crop of
``s*crop x s*crop`` at (s*row, s*col) for scale factor s. Positions come from
a seeded ``torch.Generator`` (on the CPU, so a seed gives the same crops on
every device); the gather itself runs on the pair's device.
"""

from __future__ import annotations

import torch

from onepair.images import shape_str, to_tensor
from onepair.pairs import Pair


class CropSampler:
    """Draws batches of aligned crops from ``pair`` (kept on ``device``)."""

    def __init__(self, pair: Pair, crop: int, device: torch.device | str = "cpu"):
        h, w = pair.input.shape[:2]
        if crop < 1 or crop > min(h, w):
            raise ValueError(
                f"crop is {crop} but the training part of the example is {shape_str(pair.input)}; "
                f"expected 1 <= crop <= {min(h, w)}"
            )
        self.crop, self.scale = crop, pair.scale
        self.x = to_tensor(pair.input, device)[0]  # (Cin, H, W)
        self.y = to_tensor(pair.output, device)[0]  # (Cout, sH, sW)
        self._offsets = torch.arange(crop, device=device)
        self._offsets_out = torch.arange(crop * pair.scale, device=device)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: (B, Cin, crop, crop) and (B, Cout, s*crop, s*crop)."""
        _, h, w = self.x.shape
        rows = torch.randint(0, h - self.crop + 1, (batch,), generator=generator)
        cols = torch.randint(0, w - self.crop + 1, (batch,), generator=generator)
        rows, cols = rows.to(self.x.device), cols.to(self.x.device)
        return (
            self._gather(self.x, rows, cols, self._offsets, 1),
            self._gather(self.y, rows, cols, self._offsets_out, self.scale),
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
        return patches.permute(1, 0, 2, 3).contiguous()
