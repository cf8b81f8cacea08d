"""Blur and deconvolution models: motion blur, Richardson-Lucy, Wiener.

The contract of :mod:`onepair.targets.classical`: an image in the convention
((H, W, C) float32 in [0, 1]) and keyword parameters in, an image of the same
size and channel count out; pure and deterministic. Sources: SciPy and
scikit-image, imported inside the functions.
"""

from __future__ import annotations

import numpy as np

from onepair.targets.classical import _per_channel


def _gaussian_psf(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    psf = np.outer(g, g)
    return psf / psf.sum()


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised linear motion-blur kernel: a centred segment ``length`` pixels long.

    ``angle`` is in degrees counter-clockwise from horizontal; the kernel is
    (K, K) with K = ``length`` rounded up to odd, non-negative, summing to 1.
    """
    from scipy.ndimage import rotate

    length = int(length)
    if length < 1:
        raise ValueError(f"motion blur length is {length}; expected a positive number of pixels")
    size = length | 1
    kernel = np.zeros((size, size))
    kernel[size // 2, :] = 1.0
    if length % 2 == 0:  # an even segment covers half of each end pixel
        kernel[size // 2, [0, -1]] = 0.5
    kernel = np.clip(rotate(kernel, angle, reshape=False, order=1, mode="constant"), 0.0, None)
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, length: int = 9, angle: float = 30.0) -> np.ndarray:
    """Linear motion blur: ``length`` pixels along ``angle`` degrees, reflect borders (linear)."""
    from scipy.ndimage import convolve

    kernel = motion_kernel(length, angle)
    return _per_channel(image, lambda c: convolve(c.astype(np.float64), kernel, mode="reflect"))


def richardson_lucy(image: np.ndarray, sigma: float = 1.5, iterations: int = 15) -> np.ndarray:
    """Richardson-Lucy deconvolution of a Gaussian PSF of std ``sigma`` pixels, per channel.

    Each channel is reflect-padded by the PSF's size first (scikit-image
    convolves with zero borders, which would darken the edges), then cropped.
    """
    from skimage.restoration import richardson_lucy as rl

    psf = _gaussian_psf(sigma)
    pad = psf.shape[0]

    def run(channel: np.ndarray) -> np.ndarray:
        padded = np.pad(channel.astype(np.float64), pad, mode="reflect")
        return rl(padded, psf, num_iter=int(iterations), clip=True)[pad:-pad, pad:-pad]

    return _per_channel(image, run)


def wiener(image: np.ndarray, sigma: float = 1.5, balance: float = 0.01) -> np.ndarray:
    """Wiener deconvolution of a Gaussian PSF of std ``sigma`` pixels, per channel, clipped.

    Reflect-padded by the PSF's size first (the filter itself is periodic), then cropped.
    """
    from skimage.restoration import wiener as wiener_filter

    psf = _gaussian_psf(sigma)
    pad = psf.shape[0]

    def run(channel: np.ndarray) -> np.ndarray:
        padded = np.pad(channel.astype(np.float64), pad, mode="reflect")
        return wiener_filter(padded, psf, balance)[pad:-pad, pad:-pad]

    return np.clip(_per_channel(image, run), 0.0, 1.0)
