"""Aligned random crops of the example pair(s), sampled in one batched gather.

An input crop of ``crop x crop`` at (row, col) pairs with the output crop of
``s*crop x s*crop`` at (s*row, s*col) for scale factor s. Positions come from
a seeded ``torch.Generator`` (on the CPU, so a seed gives the same crops on
every device that draws them this way); the gather itself runs on the pair's device. With several
examples, each crop first picks its example with probability proportional to
the number of crop positions it holds, so every position is equally likely.
Each example may come with a weight per output pixel (0 on the held-out
blocks of :mod:`onepair.validation`), gathered with its crops for the loss.

:meth:`CropSampler.sample_on_device` draws the positions on the pair's device
instead (from torch's generator for that device, seeded by ``torch.manual_seed``),
with no copy from the host and no synchronisation, so that a CUDA graph can
capture it (:mod:`onepair.steps`); it needs examples of one shape, stacked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from onepair.images import shape_str, to_tensor
from onepair.pairs import Pair


class Batch(NamedTuple):
    x: torch.Tensor  # (B, Cin, crop, crop)
    y: torch.Tensor  # (B, Cout, s*crop, s*crop)
    w: torch.Tensor | None  # (B, 1, s*crop, s*crop) weights, or None


class CropSampler:
    """Draws batches of aligned crops from ``pairs`` (kept on ``device``)."""

    def __init__(
        self,
        pairs: Pair | Sequence[Pair],
        crop: int,
        device: torch.device | str = "cpu",
        weights: Sequence[np.ndarray] | None = None,
    ):
        pairs = [pairs] if isinstance(pairs, Pair) else list(pairs)
        if weights is not None and len(weights) != len(pairs):
            raise ValueError(
                f"{len(weights)} weight maps for {len(pairs)} examples; expected one each"
            )
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
        # (1, sH, sW) each: a weight per output pixel, or None
        self.w = [to_tensor(w, device)[0] for w in weights] if weights is not None else None
        for index, (y, w) in enumerate(zip(self.y, self.w or [], strict=False)):
            if w.shape[1:] != y.shape[1:] or w.shape[0] != 1:
                raise ValueError(
                    f"weights of example {index} are {tuple(w.shape[1:])}x{w.shape[0]}; "
                    f"expected one channel of the output's {tuple(y.shape[1:])}"
                )
        positions = [(x.shape[1] - crop + 1) * (x.shape[2] - crop + 1) for x in self.x]
        self._weights = torch.tensor(positions, dtype=torch.float64)
        self._offsets = torch.arange(crop, device=device)
        self._offsets_out = torch.arange(crop * self.scale, device=device)
        self._stacked: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        if len({tuple(x.shape) for x in self.x}) == 1:  # (N, C, H, W): one gather draws all
            self._stacked = (
                torch.stack(self.x),
                torch.stack(self.y),
                torch.stack(self.w) if self.w is not None else None,
            )
            # the lists become views of the stacks: one copy of the examples, not two
            self.x, self.y = list(self._stacked[0]), list(self._stacked[1])
            if self._stacked[2] is not None:
                self.w = list(self._stacked[2])

    @property
    def draws_on_device(self) -> bool:
        """Whether :meth:`sample_on_device` can run: all examples have one shape."""
        return self._stacked is not None

    def sample_on_device(self, batch: int) -> Batch:
        """As :meth:`sample`, with positions (and examples, uniformly: they hold equally
        many positions) drawn on the device by its default generator."""
        if self._stacked is None:
            raise ValueError(
                "crops are drawn on the device only from examples of one shape; these are "
                + ", ".join("x".join(map(str, x.shape[1:])) for x in self.x)
            )
        x, y, w = self._stacked
        n, _, h, wd = x.shape
        device = x.device
        which = torch.randint(0, n, (batch,), device=device)
        rows = torch.randint(0, h - self.crop + 1, (batch,), device=device)
        cols = torch.randint(0, wd - self.crop + 1, (batch,), device=device)
        out = self._offsets_out
        return Batch(
            self._gather(x, which, rows, cols, self._offsets, 1),
            self._gather(y, which, rows, cols, out, self.scale),
            self._gather(w, which, rows, cols, out, self.scale) if w is not None else None,
        )

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        """``(x, y, w)``: (B, Cin, crop, crop), (B, Cout, s*crop, s*crop), and the
        crops' (B, 1, s*crop, s*crop) weights, or None where the examples have none."""
        if len(self.x) == 1:
            return self._sample_one(0, batch, generator)
        which = torch.multinomial(self._weights, batch, replacement=True, generator=generator)
        parts = [
            self._sample_one(i, int(n), generator)
            for i, n in enumerate(torch.bincount(which, minlength=len(self.x)).tolist())
            if n
        ]
        return Batch(
            torch.cat([p.x for p in parts]),
            torch.cat([p.y for p in parts]),
            torch.cat([p.w for p in parts]) if self.w is not None else None,  # type: ignore[misc]
        )

    def _sample_one(self, index: int, batch: int, generator: torch.Generator) -> Batch:
        x, y = self.x[index], self.y[index]
        _, h, w = x.shape
        rows = torch.randint(0, h - self.crop + 1, (batch,), generator=generator)
        cols = torch.randint(0, w - self.crop + 1, (batch,), generator=generator)
        rows, cols = rows.to(x.device), cols.to(x.device)
        first = rows.new_zeros(batch)  # every crop from the one image of each stack of one
        out = self._offsets_out
        return Batch(
            self._gather(x[None], first, rows, cols, self._offsets, 1),
            self._gather(y[None], first, rows, cols, out, self.scale),
            self._gather(self.w[index][None], first, rows, cols, out, self.scale)
            if self.w
            else None,
        )

    @staticmethod
    def _gather(
        images: torch.Tensor,
        which: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        offsets: torch.Tensor,
        scale: int,
    ) -> torch.Tensor:
        """Crop b of image ``which[b]`` of the (N, C, H, W) ``images`` at ``scale`` times
        (``rows[b]``, ``cols[b]``): (B, C, crop, crop), channels-last."""
        r = (rows * scale)[:, None] + offsets  # (B, crop)
        c = (cols * scale)[:, None] + offsets  # (B, crop)
        # advanced indices around a slice put their dimensions first: (B, crop, crop, C),
        # which is (B, C, crop, crop) in channels-last memory once permuted; one pass
        patches = images[which[:, None, None], :, r[:, :, None], c[:, None, :]]
        return patches.permute(0, 3, 1, 2)
