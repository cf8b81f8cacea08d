"""A cross-region estimate of held-out fidelity: fit on three quadrants, measure on the fourth.

The held-out blocks (:mod:`onepair.validation`) lie among the pixels a fit learns
from, so they show content like theirs, and their PSNR is an upper estimate for
new images: 1-5 dB high on the benchmark's hard targets (docs/FIDELITY.md). Here
each quadrant of the example is held out in turn: a fit of the same recipe on
the other three quadrants (as separate pairs, so the fold never sees the held-out
quadrant, not even as input) is applied to the whole input and measured on that
quadrant. The PSNR over the four quadrants' pixels together is the estimate. A
quadrant's content is less like what its fold learnt from than a block's, and the
folds learn from three quarters of the example, so the estimate is mostly below the
blocks' and errs either way: on six of the benchmark's seven targets, two seeds
each, by -3.4 to +1.6 dB, where the blocks erred by +1.1 to +5.0 (on the seventh,
whose held-out images show what the example does not, both are 7-8 dB high).

With several examples, fold k holds out quadrant k of each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from onepair.fit import FitConfig, fit
from onepair.images import shape_str
from onepair.metrics import psnr
from onepair.models import ModelConfig, build
from onepair.pairs import Pair, check_size

Region = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of an input


def quadrants(height: int, width: int) -> list[Region]:
    """The four quadrants of a ``height x width`` input, row by row."""
    h, w = height // 2, width // 2
    return [(0, h, 0, w), (0, h, w, width), (h, height, 0, w), (h, height, w, width)]


def check_quadrants(
    pairs: Sequence[Pair], model: ModelConfig, crop: int, seconds: float | None = None
) -> None:
    """Raise if a fold of :func:`cross_check` could not fit: too small a quadrant, or time."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"cross-check seconds is {seconds}; expected a positive time per fold")
    first = pairs[0]
    with torch.device("meta"):  # the receptive field, without allocating the network
        span = build(model, first.in_channels, first.out_channels, first.scale).receptive_field()
    for one in pairs:
        smallest = Pair.of(*_part(one, quadrants(*one.input.shape[:2])[0]))
        try:
            check_size(smallest, crop, span.size)
        except ValueError as error:
            raise ValueError(
                f"the cross-check fits on quadrants of the example, and a "
                f"{shape_str(one.input)} example has quadrants too small: {error}"
            ) from None


def cross_check(
    pair: Pair | Sequence[Pair],
    model: ModelConfig,
    config: FitConfig,
    seconds: float | None,
    show_progress: bool = False,
) -> dict:
    """PSNR of ``model`` fitted for ``seconds`` on three quadrants, on the fourth, pooled.

    Each fold fits with ``config``'s settings for ``seconds`` of wall time (``None``:
    within ``config``'s own budget). Returns ``{"psnr", "folds", "seconds_each"}``:
    the PSNR over the four held-out quadrants' pixels together, and each fold's own.
    """
    pairs = [pair] if isinstance(pair, Pair) else list(pair)
    check_quadrants(pairs, model, config.crop, seconds)
    fold_config = config if seconds is None else replace(config, seconds=seconds, steps=10**9)
    guesses, truths, folds = [], [], []
    for k in range(4):
        train = [
            Pair.of(*_part(one, region))
            for one in pairs
            for index, region in enumerate(quadrants(*one.input.shape[:2]))
            if index != k
        ]
        imitator = fit(train, model, fold_config, show_progress=show_progress)
        guess, truth = [], []
        for one in pairs:
            held = quadrants(*one.input.shape[:2])[k]
            prediction = imitator.apply(one.input, precision="float32")  # clipped to [0, 1]
            guess.append(_cut(prediction, held, one.scale).reshape(-1, 1))
            truth.append(_cut(one.output, held, one.scale).reshape(-1, 1))
        folds.append(psnr(np.concatenate(guess), np.concatenate(truth)))
        guesses += guess
        truths += truth
    return {
        "psnr": psnr(np.concatenate(guesses), np.concatenate(truths)),
        "folds": folds,
        "seconds_each": seconds,
    }


def _part(pair: Pair, region: Region) -> tuple[np.ndarray, np.ndarray]:
    return _cut(pair.input, region, 1), _cut(pair.output, region, pair.scale)


def _cut(image: np.ndarray, region: Region, scale: int) -> np.ndarray:
    r0, r1, c0, c1 = (scale * v for v in region)
    return image[r0:r1, c0:c1]
