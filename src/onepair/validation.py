"""The held-out blocks: the fit's own measure of fidelity, and its equivariance test.

A fraction (``FitConfig.holdout``) of each example, as square blocks spread
evenly over it, is never learnt from: training crops may cover a block (its
input is context, as it is at apply time), but its target pixels carry no
loss and do not enter the linear solve. The fit measures PSNR on the blocks to
keep the best weights and stop early; ``fit --auto`` ranks its candidates by
it and reports it as its estimate of held-out fidelity; with
``augment="auto"`` it finds the flips and rotations the target commutes with.

Blocks rather than one band of rows: how well a copy does depends on what the
picture holds, and a band samples one region of it (the bottom rows of the zoo's
example, a mission patch and a name tag, gave a copy of NL-means 28.5 dB against
34.4 dB on other photographs). Blocks spread over the example sample its
content as a whole, and they lie mostly away from the borders, where a
target's own padding is another thing to copy. The estimate they give is
still high where other images are harder to copy than the example
(docs/FIDELITY.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from onepair import dihedral
from onepair.metrics import psnr
from onepair.pairs import Pair, baseline

BLOCK = 32  # side of a held-out block, in input pixels (smaller on small examples)


def held_out_blocks(
    height: int, width: int, fraction: float, block: int = BLOCK, multiple: int = 1
) -> tuple[int, list[tuple[int, int]]]:
    """The side and the top-left corners of the held-out blocks of an input.

    The input is cut into a grid of ``side x side`` cells (``side`` is ``block``,
    or an eighth of the shorter side of a smaller input, rounded down to a
    ``multiple`` of the network's down-sampling factor, so that each block's
    context window meets the network's grid as a whole-image pass does). The
    input's last rows and columns that do not fill a cell are never held out.
    One cell in ``period``
    (``round(1 / fraction)``) is held out, and at least one: cell (i, j) where
    ``step * i + j`` is ``period // 2`` modulo ``period``, with ``step`` coprime to
    ``period``, so that every ``period`` x ``period`` part of the grid holds one
    cell in each of its rows and columns, and (from ``period`` 5 up) no two
    held-out cells touch, not even at a corner.
    """
    if not 0.0 <= fraction <= 0.5:
        raise ValueError(
            f"holdout is {fraction}; expected a fraction in [0, 0.5] (one cell in "
            "round(1 / holdout) is held out)"
        )
    side = max(1, min(block, min(height, width) // 8))
    side = max(multiple, side - side % multiple)
    if fraction == 0.0:
        return side, []
    rows, columns = height // side, width // side
    period = max(2, round(1.0 / fraction))
    step = min(range(1, period), key=lambda a: (math.gcd(a, period) != 1, abs(a - 0.38 * period)))
    corners = [
        (i * side, j * side)
        for i in range(rows)
        for j in range(columns)
        if (step * i + j) % period == period // 2
    ]
    if not corners:  # a grid too small for the fraction: its central cell
        corners = [(rows // 2 * side, columns // 2 * side)]
    return side, corners


class Holdout:
    """The held-out blocks of one example, and the PSNR of a network on them.

    Each block is measured with ``margin`` pixels of the example around it
    (reflected at the example's borders, as apply pads), in batches of blocks.
    On large examples only an evenly spaced subset of the blocks is measured,
    whose windows (block and context) hold at most ``max_pixels`` input pixels,
    so validation stays cheap.
    """

    def __init__(
        self,
        pair: Pair,
        fraction: float,
        margin: int,
        block: int = BLOCK,
        multiple: int = 1,
        max_pixels: int = 131_072,
    ):
        h, w = pair.input.shape[:2]
        self.side, self.corners = held_out_blocks(h, w, fraction, block, multiple)
        side, s = self.side, pair.scale
        self.mask = np.zeros((h, w), bool)  # input pixels whose targets are held out
        for r, c in self.corners:
            self.mask[r : r + side, c : c + side] = True
        limit = max(1, max_pixels // (side + 2 * margin) ** 2)  # input pixels run
        measured = self.corners[:: -(-len(self.corners) // limit)] if self.corners else []
        self.margin, self.scale = margin, s
        self.windows = np.stack([_window(pair.input, r, c, side, margin) for r, c in measured])
        self.truth = np.stack(
            [pair.output[s * r : s * (r + side), s * c : s * (c + side)] for r, c in measured]
        )
        inputs = self.windows[:, margin : margin + side, margin : margin + side]
        floor = [baseline(x, y) for x, y in zip(inputs, self.truth, strict=True)]
        self.floor = None if floor[0] is None else _psnr(np.stack(floor), self.truth)  # type: ignore[arg-type]

    def weight(self) -> np.ndarray:
        """(s*H, s*W, 1) float32: 1 where the target may be learnt from, 0 on the blocks."""
        keep = np.repeat(np.repeat(~self.mask, self.scale, 0), self.scale, 1)
        return keep[..., None].astype(np.float32)

    @torch.inference_mode()
    def __call__(
        self, network: torch.nn.Module, device: torch.device, transform: str = "identity"
    ) -> float:
        """PSNR of ``network`` on the blocks, run on them under ``transform`` (and back)."""
        windows = _each(dihedral.forward, self.windows, transform)  # (N, S, S, C)
        x = torch.from_numpy(windows).permute(0, 3, 1, 2)  # (N, C, S, S), channels-last
        outputs = [network(chunk.to(device)).permute(0, 2, 3, 1).cpu() for chunk in x.split(64)]
        prediction = _each(dihedral.inverse, torch.cat(outputs).float().numpy(), transform)
        s, m, side = self.scale, self.margin, self.side
        centre = prediction[:, s * m : s * (m + side), s * m : s * (m + side)]
        return _psnr(np.clip(centre, 0.0, 1.0), self.truth)


class Holdouts:
    """Mean held-out PSNR over the examples' blocks (one example: its blocks')."""

    def __init__(self, holdouts: list[Holdout]):
        self.holdouts = holdouts
        floors = [h.floor for h in holdouts]
        self.floor = None if None in floors else float(np.mean(floors))  # type: ignore[arg-type]

    def __call__(
        self, network: torch.nn.Module, device: torch.device, transform: str = "identity"
    ) -> float:
        return float(np.mean([h(network, device, transform) for h in self.holdouts]))


def _each(
    transform: Callable[[np.ndarray, str], np.ndarray], stack: np.ndarray, name: str
) -> np.ndarray:
    """``transform(block, name)`` of every block of an (N, H, W, C) stack, contiguous."""
    # (N, H, W, C) -> (H, W, N, C): the transforms act on the first two axes
    moved = transform(np.moveaxis(stack, 0, 2), name)
    return np.ascontiguousarray(np.moveaxis(moved, 2, 0))


def _psnr(blocks: np.ndarray, truth: np.ndarray) -> float:
    """PSNR over (N, H, W, C) stacks of blocks: their pixels pooled."""
    return psnr(blocks.reshape(-1, *blocks.shape[2:]), truth.reshape(-1, *truth.shape[2:]))


def _window(image: np.ndarray, row: int, col: int, side: int, margin: int) -> np.ndarray:
    """``image[row - margin : row + side + margin, col - margin : ...]``, reflected
    beyond the image's borders as :func:`onepair.tiling.apply_network` pads."""
    h, w = image.shape[:2]
    top, bottom = row - margin, row + side + margin
    left, right = col - margin, col + side + margin
    part = image[max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)]
    pads = ((max(-top, 0), max(bottom - h, 0)), (max(-left, 0), max(right - w, 0)), (0, 0))
    return np.pad(part, pads, mode="reflect") if any(map(any, pads)) else part


def equivariances(
    network: torch.nn.Module, validate: Holdouts, device: torch.device, tolerance: float
) -> tuple[list[str], dict[str, float]]:
    """The transforms the target looks equivariant to, and the held-out PSNR under each.

    The network so far has learnt the target from untransformed crops only. Where
    the target commutes with a transform g, each transformed block is a true pair
    of the target, and ``g^-1(network(g(block)))`` is about as good as the plain
    pass; where it does not, the network's answer is the target's on g(block),
    not g of the target's answer, and loses much of its gain over the floor. A
    transform is kept when it keeps at least ``1 - tolerance`` of the plain
    pass's gain over the floor (within 0.5 dB where there is no floor, or no
    gain yet).
    """
    scores = {name: validate(network, device, name) for name in dihedral.TRANSFORMS}
    plain, floor = scores["identity"], validate.floor

    def kept(value: float) -> bool:
        if floor is not None and plain > floor:
            return value - floor >= (1.0 - tolerance) * (plain - floor)
        return value >= plain - 0.5

    return [name for name, value in scores.items() if kept(value)], scores
