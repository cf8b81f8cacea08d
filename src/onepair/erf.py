"""Effective receptive field (ERF): how far a change at one pixel travels (paper, Fig. 4).

The paper's protocol for any black box: take noisy test images (Gaussian noise
of sigma 25 on the 0..255 scale), change the centre pixel of each by a small
``delta``, and average ``|f(x') - f(x)|`` over images and output channels. The
map shows the *influence of the input's centre on every output pixel*; its
95%-mass radius says how local the model is, and so how much one example
pair can teach about it.

The gradient form (Luo et al., "Understanding the effective receptive field
in deep CNNs", 2016) needs the network itself: ``|d y_centre / d x|`` summed
over input channels shows the *influence of every input pixel on the output's
centre*. The two are transposes of each other: for a linear single-channel
filter ``k`` the black-box map at offset ``o`` is ``delta * |k(o)|`` and the
gradient map is ``|k(-o)|``, so they agree (up to ``delta``) for symmetric
local operators and are mirror images otherwise.

>>> result = black_box_erf(load_target("gaussian-blur:sigma=2"))  # doctest: +SKIP
>>> round(result.radius, 1)                                          # doctest: +SKIP
5.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from onepair.images import as_image, match_channels, shape_str, to_tensor
from onepair.samples import sample
from onepair.targets import load_target

DELTA = 0.1  # the centre pixel's change, on the [0, 1] range
# Different photographs, colour first; cycled when more images are asked for.
IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "ihc", "retina", "moon")


@dataclass
class ErfResult:
    """An ERF map and its summary.

    ``map``: (H', W') float64 >= 0. ``scale``: map pixels per input pixel -- the
    target's up-scaling factor for the black-box form (the map is at output
    resolution), 1 for the gradient form (input resolution). ``radius`` is in
    input pixels. ``delta`` is 0 for the gradient form; ``queries`` counts calls
    of the target (black box) or forward passes (gradient).
    """

    map: np.ndarray = field(repr=False)
    radius: float
    mass: float
    scale: int
    images: int
    sigma: float
    delta: float
    queries: int
    method: str  # "black-box" or "gradient"

    def to_dict(self) -> dict[str, Any]:
        """Everything but the map, JSON-ready, plus the map's shape and total."""
        data = {k: v for k, v in asdict(self).items() if k != "map"}
        data["map_shape"] = list(self.map.shape)
        data["total"] = float(self.map.sum())
        return data


def black_box_erf(
    target: str | Callable[[np.ndarray], np.ndarray],
    images: Sequence[np.ndarray] | None = None,
    size: int | None = 96,
    count: int = 8,
    sigma: float = 25.0,
    delta: float = DELTA,
    channels: int | None = None,
    seed: int = 0,
    mass: float = 0.95,
) -> ErfResult:
    """ERF of any black box by queries: mean ``|f(x') - f(x)|`` over noisy images.

    ``target``: a spec string or any callable image -> image (a ``SpecTarget``,
    an :class:`~onepair.imitator.Imitator`, a plain function); only the model
    runs, never the spec's degradations -- the noise added here plays their
    part. ``images``: clean images (H, W, C) to use instead of the built-in
    photographs (:data:`IMAGES`, cycled); each is cropped centrally to
    ``size x size``, or used whole with ``size=None`` (then all must share one
    height and width). ``count`` images get seeded Gaussian noise of ``sigma``
    (0..255 scale), clipped to [0, 1]. ``x'`` adds ``delta`` to every channel of
    the centre pixel ``(H // 2, W // 2)``, or subtracts it where the sum would
    pass 1. ``channels``: the target's input channels; by default the target's
    ``in_channels`` if it has one, else 3, falling back to 1 when the target
    refuses 3 with a ValueError. The map is at output resolution (``s*H x s*W``
    for an ``s``-times up-scaling target); 2 queries per image.
    """
    _check_common(size, count, sigma, mass, channels)
    if not 0.0 < delta <= 1.0:
        raise ValueError(f"delta is {delta}; expected a change in (0, 1] of the [0, 1] range")
    if channels is None:
        channels = getattr(target, "in_channels", None)
    call = load_target(target)
    clean = _clean_images(images, size, count)
    noisy = _add_noise(clean, count, sigma, seed)
    queries = 0

    def ask(x: np.ndarray) -> np.ndarray:
        nonlocal queries
        queries += 1
        return call(x)

    first, channels = _first_answer(ask, noisy[0], channels)
    total: np.ndarray | None = None
    for i, image in enumerate(noisy):
        x = _to_channels(image, channels)
        y = first if i == 0 else ask(x)
        y2 = ask(_changed(x, delta))
        if y2.shape != y.shape:
            raise ValueError(f"target answered {shape_str(y)} and then {shape_str(y2)}")
        change = np.abs(y2.astype(np.float64) - y.astype(np.float64)).mean(axis=2)
        total = change if total is None else total + change
    assert total is not None
    scale = first.shape[0] // noisy[0].shape[0]
    erf = total / len(noisy)
    radius = erf_radius(erf, scale, mass)
    return ErfResult(erf, radius, mass, scale, len(noisy), sigma, delta, queries, "black-box")


def gradient_erf(
    model: nn.Module | Any,
    images: Sequence[np.ndarray] | None = None,
    size: int | None = 96,
    count: int = 8,
    sigma: float = 25.0,
    channels: int | None = None,
    seed: int = 0,
    mass: float = 0.95,
) -> ErfResult:
    """ERF of a network by gradients: mean ``sum_c |d y_centre / d x_c|`` over noisy images.

    ``model``: a torch ``nn.Module`` mapping (1, C, H, W) to (1, C', s*H, s*W),
    or an :class:`~onepair.imitator.Imitator` (its ``.network``). ``y_centre``
    is the sum over output channels of the output pixels at the input's centre
    ``(H // 2, W // 2)`` (the ``s x s`` block above it for an up-scaling
    network). Images, noise and ``channels`` as in :func:`black_box_erf`
    (``channels`` defaults to the network's ``in_channels``, else its first
    convolution's). The network runs in eval mode and is restored to its mode
    afterwards; parameter gradients are left untouched. The map is at input
    resolution, so ``scale`` is 1.
    """
    _check_common(size, count, sigma, mass, channels)
    network = getattr(model, "network", model)
    if not isinstance(network, nn.Module):
        raise TypeError(
            f"gradient_erf needs a torch nn.Module or an Imitator; got {type(model).__name__}"
        )
    channels = channels or getattr(network, "in_channels", None) or _first_conv_channels(network)
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    noisy = _add_noise(_clean_images(images, size, count), count, sigma, seed)
    total: np.ndarray | None = None
    training = network.training
    network.eval()
    try:
        for image in noisy:
            x = to_tensor(_to_channels(image, channels), device).to(dtype).requires_grad_(True)
            y = network(x)  # (1, C', s*H, s*W)
            h, w = x.shape[-2:]
            s = y.shape[-2] // h
            cy, cx = h // 2, w // 2
            centre = y[0, :, s * cy : s * cy + s, s * cx : s * cx + s].sum()
            (grad,) = torch.autograd.grad(centre, x)
            change = grad[0].abs().sum(0).double().cpu().numpy()  # (H, W)
            total = change if total is None else total + change
    finally:
        network.train(training)
    assert total is not None
    erf = total / len(noisy)
    return ErfResult(
        erf, erf_radius(erf, 1, mass), mass, 1, len(noisy), sigma, 0.0, len(noisy), "gradient"
    )


def erf_radius(map: np.ndarray, scale: int = 1, mass: float = 0.95) -> float:
    """Radius in input pixels of the smallest disc around the probed pixel holding ``mass``.

    ``map`` (s*H, s*W) >= 0 at ``scale`` s map pixels per input pixel; the
    probed input pixel ``(H // 2, W // 2)`` covers the ``s x s`` block whose
    centre is ``(s*(H // 2) + (s-1)/2, ...)`` in map pixels. The disc holds
    each pixel whose centre lies within it (exact on the grid), so the result
    is a grid distance divided by ``s``: 0 for a map with all mass at the
    centre, sqrt(2) for a uniform 3x3 box at ``mass`` > 5/9. 0 for an all-zero map.
    """
    map = np.asarray(map, dtype=np.float64)
    if map.ndim != 2 or map.size == 0:
        raise ValueError(f"ERF map has shape {map.shape}; expected a non-empty (H, W) array")
    if not np.isfinite(map).all() or (map < 0).any():
        raise ValueError("ERF map holds negative, NaN or infinite values; expected finite >= 0")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale is {scale!r}; expected an integer >= 1")
    if map.shape[0] % scale or map.shape[1] % scale:
        raise ValueError(f"ERF map is {map.shape[0]}x{map.shape[1]}, not a multiple of {scale}")
    _check_mass(mass)
    total = map.sum()
    if total <= 0:
        return 0.0
    h, w = map.shape[0] // scale, map.shape[1] // scale
    # doubled coordinates keep half-pixel centres integral: squared distances are exact
    rows = 2 * np.arange(map.shape[0]) - (2 * scale * (h // 2) + scale - 1)
    cols = 2 * np.arange(map.shape[1]) - (2 * scale * (w // 2) + scale - 1)
    d2 = (rows[:, None] ** 2 + cols[None, :] ** 2).ravel()
    distances, group = np.unique(d2, return_inverse=True)
    inside = np.cumsum(np.bincount(group, weights=map.ravel()))
    k = int(np.searchsorted(inside, mass * total * (1 - 1e-12)))
    return math.sqrt(distances[min(k, len(distances) - 1)]) / (2 * scale)


# ----------------------------------------------------------------------------- helpers


def _check_mass(mass: float) -> None:
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass is {mass}; expected a fraction in (0, 1]")


def _check_common(
    size: int | None, count: int, sigma: float, mass: float, channels: int | None
) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 3):
        raise ValueError(f"size is {size!r}; expected an integer >= 3 (or None for whole images)")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count is {count!r}; expected an integer >= 1")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma is {sigma}; expected a noise level >= 0 on the 0..255 scale")
    _check_mass(mass)
    if channels is not None and (
        isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
    ):
        raise ValueError(f"channels is {channels!r}; expected an integer >= 1 (or None)")


def _clean_images(
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


def _add_noise(clean: list[np.ndarray], count: int, sigma: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.clip(x + rng.normal(0.0, sigma / 255.0, x.shape), 0.0, 1.0).astype(np.float32)
        for x in clean[:count]
    ]


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Gray repeated, RGB to gray, or gray luminance repeated to any other count."""
    if image.shape[2] == channels or image.shape[2] == 1 or channels in (1, 3):
        return match_channels(image[:, :, :3] if channels == 3 else image, channels)
    return np.repeat(match_channels(image, 1), channels, axis=2)


def _changed(x: np.ndarray, delta: float) -> np.ndarray:
    """``x`` with ``delta`` added to (or, where that passes 1, taken from) its centre pixel."""
    x2 = x.copy()
    cy, cx = x.shape[0] // 2, x.shape[1] // 2
    v = x2[cy, cx, :]
    x2[cy, cx, :] = np.where(v + delta > 1.0, v - delta, v + delta)
    return x2


def _first_answer(
    ask: Callable[[np.ndarray], np.ndarray], image: np.ndarray, channels: int | None
) -> tuple[np.ndarray, int]:
    """The target's answer to the first image and the channel count it accepts."""
    if channels is not None:
        return ask(_to_channels(image, channels)), channels
    try:
        return ask(_to_channels(image, 3)), 3
    except ValueError as three:  # ImageError is a ValueError
        try:
            return ask(_to_channels(image, 1)), 1
        except ValueError as one:
            raise ValueError(
                f"the target refused 3 channels ({three}) and 1 channel ({one}); pass channels=N"
            ) from None


def _first_conv_channels(network: nn.Module) -> int:
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError("cannot tell the network's input channels; pass channels=N")


__all__ = [
    "DELTA",
    "IMAGES",
    "ErfResult",
    "black_box_erf",
    "erf_radius",
    "gradient_erf",
]
