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

from onepair.erf_probes import (
    IMAGES,
    add_noise,
    check_common,
    check_mass,
    clean_images,
    first_answer,
    first_conv_channels,
    to_channels,
    with_centre_changed,
)
from onepair.images import shape_str, to_tensor
from onepair.targets import load_target

DELTA = 0.1  # the centre pixel's change, on the [0, 1] range


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
    check_common(size, count, sigma, mass, channels)
    if not 0.0 < delta <= 1.0:
        raise ValueError(f"delta is {delta}; expected a change in (0, 1] of the [0, 1] range")
    if channels is None:
        channels = getattr(target, "in_channels", None)
    call = load_target(target)
    clean = clean_images(images, size, count)
    noisy = add_noise(clean, count, sigma, seed)
    queries = 0

    def ask(x: np.ndarray) -> np.ndarray:
        nonlocal queries
        queries += 1
        return call(x)

    first, channels = first_answer(ask, noisy[0], channels)
    total: np.ndarray | None = None
    for i, image in enumerate(noisy):
        x = to_channels(image, channels)
        y = first if i == 0 else ask(x)
        y2 = ask(with_centre_changed(x, delta))
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
    check_common(size, count, sigma, mass, channels)
    network = getattr(model, "network", model)
    if not isinstance(network, nn.Module):
        raise TypeError(
            f"gradient_erf needs a torch nn.Module or an Imitator; got {type(model).__name__}"
        )
    channels = channels or getattr(network, "in_channels", None) or first_conv_channels(network)
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    noisy = add_noise(clean_images(images, size, count), count, sigma, seed)
    total: np.ndarray | None = None
    training = network.training
    network.eval()
    try:
        for image in noisy:
            x = to_tensor(to_channels(image, channels), device).to(dtype).requires_grad_(True)
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
    check_mass(mass)
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


__all__ = [
    "DELTA",
    "IMAGES",
    "ErfResult",
    "black_box_erf",
    "erf_radius",
    "gradient_erf",
]
