"""The probe images of an ERF measurement (:mod:`onepair.erf`) and their checks.

Clean images (given, or built-in photographs cycled), their noisy copies, the
copy with its centre pixel changed, the channel count a black box accepts, and
the argument checks both ERF forms share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from torch import nn

from onepair.images import as_image, match_channels, shape_str
from onepair.samples import sample

# Different photographs, colour first; cycled when more images are asked for.
IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "ihc", "retina", "moon")


def check_mass(mass: float) -> None:
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass is {mass}; expected a fraction in (0, 1]")


def check_common(
    size: int | None, count: int, sigma: float, mass: float, channels: int | None
) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 3):
        raise ValueError(f"size is {size!r}; expected an integer >= 3 (or None for whole images)")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count is {count!r}; expected an integer >= 1")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma is {sigma}; expected a noise level >= 0 on the 0..255 scale")
    check_mass(mass)
    if channels is not None and (
        isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
    ):
        raise ValueError(f"channels is {channels!r}; expected an integer >= 1 (or None)")


def clean_images(
    images: Sequence[np.ndarray] | None, size: int | None, count: int
) -> list[np.ndarray]:
    """``count`` clean (H, W, C) images: the given ones cycled, or built-in photographs."""
    if images is None:
        if size is None:
            raise ValueError("size is None; the built-in photographs need a crop size")
        return [sample(IMAGES[i % len(IMAGES)], size) for i in range(count)]
    if isinstance(images, np.ndarray) and images.ndim < 4:
        raise ValueError(f"images is one array of shape {images.shape}; expected a list of images")
    if len(images) == 0:
        raise ValueError("images is empty; expected at least one image, or None for built-ins")
    clean = []
    for i in range(count):
        image = as_image(images[i % len(images)], f"images[{i % len(images)}]")
        if size is not None:
            h, w = image.shape[:2]
            if size > min(h, w):
                raise ValueError(f"images[{i % len(images)}] is {h}x{w}; cannot crop {size}x{size}")
            top, left = (h - size) // 2, (w - size) // 2
            image = image[top : top + size, left : left + size]
        if clean and image.shape[:2] != clean[0].shape[:2]:
            raise ValueError(
                f"images are {shape_str(clean[0])} and {shape_str(image)}; with size=None "
                "all must share one height and width"
            )
        clean.append(image)
    return clean


def add_noise(clean: list[np.ndarray], count: int, sigma: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.clip(x + rng.normal(0.0, sigma / 255.0, x.shape), 0.0, 1.0).astype(np.float32)
        for x in clean[:count]
    ]


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Gray repeated, RGB to gray, or gray luminance repeated to any other count."""
    if image.shape[2] == channels or image.shape[2] == 1 or channels in (1, 3):
        return match_channels(image[:, :, :3] if channels == 3 else image, channels)
    return np.repeat(match_channels(image, 1), channels, axis=2)


def with_centre_changed(x: np.ndarray, delta: float) -> np.ndarray:
    """``x`` with ``delta`` added to (or, where that passes 1, taken from) its centre pixel."""
    x2 = x.copy()
    cy, cx = x.shape[0] // 2, x.shape[1] // 2
    v = x2[cy, cx, :]
    x2[cy, cx, :] = np.where(v + delta > 1.0, v - delta, v + delta)
    return x2


def first_answer(
    ask: Callable[[np.ndarray], np.ndarray], image: np.ndarray, channels: int | None
) -> tuple[np.ndarray, int]:
    """The target's answer to the first image and the channel count it accepts."""
    if channels is not None:
        return ask(to_channels(image, channels)), channels
    try:
        return ask(to_channels(image, 3)), 3
    except ValueError as three:  # ImageError is a ValueError
        try:
            return ask(to_channels(image, 1)), 1
        except ValueError as one:
            raise ValueError(
                f"the target refused 3 channels ({three}) and 1 channel ({one}); pass channels=N"
            ) from None


def first_conv_channels(network: nn.Module) -> int:
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError("cannot tell the network's input channels; pass channels=N")
