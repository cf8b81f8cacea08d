"""The single input/output example, validated.

A pair is what an attacker has: one image the black box took and the image it
returned. The output may be larger by an integer factor (super-resolution) and
may have another channel count (virtual staining: 1 -> 3). Blocks of the
example are held out of training so that a fit can measure, with no other
data, how well it generalises (:mod:`onepair.validation`; DESIGN.md, "floor").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from onepair.images import as_image, shape_str


@dataclass(frozen=True)
class Pair:
    """A validated example: ``output`` is ``target(input)``.

    ``input`` is (H, W, Cin) and ``output`` is (s*H, s*W, Cout) for the integer
    ``scale`` s >= 1. Construct with :meth:`Pair.of`, which checks the sizes.
    """

    input: np.ndarray
    output: np.ndarray
    scale: int

    @classmethod
    def of(cls, input: np.ndarray, output: np.ndarray) -> Pair:
        """Validate two images as an example pair and infer the scale factor.

        >>> Pair.of(np.zeros((8, 8, 1)), np.zeros((16, 16, 3))).scale
        2
        """
        x = as_image(input, "input")
        y = as_image(output, "output")
        return cls(x, y, infer_scale(x.shape, y.shape))

    @property
    def in_channels(self) -> int:
        return self.input.shape[2]

    @property
    def out_channels(self) -> int:
        return self.output.shape[2]


def infer_scale(input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
    """The integer factor by which output (H, W) exceeds input (H, W).

    Raises ``ValueError`` saying both sizes when they are neither equal nor an
    integer multiple in both dimensions.
    """
    (h, w), (oh, ow) = input_shape[:2], output_shape[:2]
    if oh % h == 0 and ow % w == 0 and oh // h == ow // w and oh >= h:
        return oh // h
    raise ValueError(
        f"input is {'x'.join(map(str, input_shape))} but output is "
        f"{'x'.join(map(str, output_shape))}; sizes must match or the output must be "
        "larger by one integer scale factor in both dimensions"
    )


def check_size(pair: Pair, crop: int, receptive_field: int) -> None:
    """Raise if the example is smaller than one training crop or the receptive field."""
    h, w = pair.input.shape[:2]
    need = max(crop, 1)
    if h < need or w < need:
        raise ValueError(
            f"example input is {shape_str(pair.input)} but training crops are {crop}x{crop}; "
            f"use an example of at least {need}x{need} or a smaller crop"
        )
    if min(h, w) < receptive_field // 2 + 1:
        raise ValueError(
            f"example input is {shape_str(pair.input)} but the imitator's receptive field "
            f"is {receptive_field}x{receptive_field}; use a larger example or a smaller imitator"
        )


def baseline(input: np.ndarray, output: np.ndarray) -> np.ndarray | None:
    """The input brought to the output's size and channels: the floor's image (DESIGN.md).

    Bicubic up-scaling for a scale change, a gray input repeated over colour
    output channels; ``None`` when channels cannot be matched (e.g. 3 -> 2).
    """
    scale = output.shape[0] // input.shape[0]
    if scale > 1:
        from skimage.transform import resize

        input = resize(
            input, output.shape[:2] + input.shape[2:], order=3, mode="reflect", anti_aliasing=False
        ).astype(np.float32)
    if input.shape[2] != output.shape[2]:
        if input.shape[2] != 1:
            return None
        input = np.repeat(input, output.shape[2], axis=2)
    return input


def as_pairs(pair: Pair | Sequence[Pair]) -> list[Pair]:
    """``pair`` as a list of pairs that agree in channels and scale, or a clear error."""
    pairs = [pair] if isinstance(pair, Pair) else list(pair)
    if not pairs:
        raise ValueError("fit got no example pairs; expected one Pair or a list of them")
    for index, one in enumerate(pairs):
        if not isinstance(one, Pair):
            raise ValueError(f"example {index} is a {type(one).__name__}; expected a Pair")
        first = pairs[0]
        if (one.in_channels, one.out_channels, one.scale) != (
            first.in_channels,
            first.out_channels,
            first.scale,
        ):
            raise ValueError(
                f"example {index} maps {one.in_channels} -> {one.out_channels} channels at "
                f"scale {one.scale} but example 0 maps {first.in_channels} -> "
                f"{first.out_channels} at scale {first.scale}; all examples must agree"
            )
    return pairs
