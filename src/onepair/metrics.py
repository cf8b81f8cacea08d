"""Fidelity metrics: PSNR and SSIM between two images in the image convention.

Fidelity in onepair is always imitator output vs target output on images that
were not the training example (DESIGN.md); these functions only compare.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from onepair.images import as_image, shape_str


def _same_shape(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_image(x, "x"), as_image(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {shape_str(x)} vs {shape_str(y)}")
    return x.astype(np.float64), y.astype(np.float64)


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    MSE is the mean over all pixels and channels, no border cropped, no
    clipping. Identical images give ``inf``.

    >>> round(psnr(np.ones((4, 4)), 1.2 * np.ones((4, 4)), data_range=2.0), 6)
    20.0
    """
    x, y = _same_shape(x, y)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity, the variant of Wang et al. (2004).

    Gaussian window sigma 1.5 truncated at 3.5 sigma (11 x 11), population
    (not sample) covariances, ``K1 = 0.01``, ``K2 = 0.03``, ``data_range`` as
    given (not inferred); filters use reflect padding and the mean is taken
    over the map without its 5-pixel border, per channel, then averaged over
    channels. This equals ``skimage.metrics.structural_similarity(x, y,
    channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range)``. Images need at
    least 11 x 11 pixels. ``ssim(x, x) == 1``.
    """
    x, y = _same_shape(x, y)
    if min(x.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11; got {shape_str(x)}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=(1.5, 1.5, 0), truncate=3.5, mode="reflect")

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[5:-5, 5:-5].mean(axis=(0, 1)).mean())
