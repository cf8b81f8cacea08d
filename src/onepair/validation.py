"""The held-out strip: the fit's own measure of fidelity, and its equivariance test.

Each example's bottom rows (``FitConfig.holdout``) are never trained on. The
fit measures PSNR there to keep the best weights and stop early, and, with
``augment="auto"``, to find which flips and rotations the target commutes with.
"""

from __future__ import annotations

import numpy as np
import torch

from onepair import dihedral
from onepair.metrics import psnr
from onepair.pairs import Pair, baseline
from onepair.tiling import apply_network


class Strips:
    """Mean held-out PSNR over the strips of all examples (one example: its strip's)."""

    def __init__(self, strips: list[Strip]):
        self.strips = strips
        floors = [s.floor for s in strips]
        self.floor = None if None in floors else float(np.mean(floors))

    def __call__(
        self, network: torch.nn.Module, device: torch.device, transform: str = "identity"
    ) -> float:
        return float(np.mean([strip(network, device, transform) for strip in self.strips]))


class Strip:
    """PSNR on the held-out strip, given context above (and beside) it.

    On large examples only a central part of the strip, at most
    ``max_pixels`` input pixels, is measured, so validation stays cheap.
    """

    def __init__(self, pair: Pair, strip: slice, margin: int, max_pixels: int = 131_072):
        s, width = pair.scale, pair.input.shape[1]
        rows = strip.stop - strip.start
        kept = min(width, max(64, max_pixels // rows))
        left = (width - kept) // 2
        columns = slice(left, left + kept)
        top, first = max(strip.start - margin, 0), max(left - margin, 0)
        self.window = pair.input[top : strip.stop, first : min(left + kept + margin, width)]
        self.crop = (
            slice(s * (strip.start - top), None),
            slice(s * (left - first), s * (left - first + kept)),
        )
        self.truth = pair.output[s * strip.start : s * strip.stop, s * left : s * (left + kept)]
        floor_image = baseline(pair.input[strip, columns], self.truth)
        self.floor = psnr(floor_image, self.truth) if floor_image is not None else None

    def __call__(
        self, network: torch.nn.Module, device: torch.device, transform: str = "identity"
    ) -> float:
        """PSNR of ``network`` on the strip, run on it under ``transform`` (and back)."""
        window = np.ascontiguousarray(dihedral.forward(self.window, transform))
        prediction = apply_network(network, window, tile=None, device=device)
        prediction = dihedral.inverse(prediction, transform)
        return psnr(np.clip(prediction[self.crop], 0.0, 1.0), self.truth)


def equivariances(
    network: torch.nn.Module, validate: Strips, device: torch.device, tolerance: float
) -> tuple[list[str], dict[str, float]]:
    """The transforms the target looks equivariant to, and the strip PSNR under each.

    The network so far has learnt the target from untransformed crops only. Where
    the target commutes with a transform g, the transformed strip is a true pair of
    the target, and ``g^-1(network(g(strip)))`` is about as good as the plain pass;
    where it does not, the network's answer is the target's on g(strip), not g of
    the target's answer, and loses much of its gain over the floor. A transform is
    kept when it keeps at least ``1 - tolerance`` of the plain pass's gain over
    the floor (within 0.5 dB where there is no floor, or no gain yet).
    """
    scores = {name: validate(network, device, name) for name in dihedral.TRANSFORMS}
    plain, floor = scores["identity"], validate.floor

    def kept(value: float) -> bool:
        if floor is not None and plain > floor:
            return value - floor >= (1.0 - tolerance) * (plain - floor)
        return value >= plain - 0.5

    return [name for name, value in scores.items() if kept(value)], scores
