"""Classical image-processing models from scikit-image, each a pure function.

Every function takes an image in the convention ((H, W, C) float32 in [0, 1])
plus keyword parameters, and returns one; RGB is processed per channel or
jointly as scikit-image does. The parameter defaults are those of the zoo.
"""

from __future__ import annotations

import numpy as np


def _channels(image: np.ndarray) -> int | None:
    return -1 if image.shape[2] > 1 else None


def _squeeze(image: np.ndarray) -> np.ndarray:
    return image if image.shape[2] > 1 else image[:, :, 0]


def _restore(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32)
    return out[:, :, None] if out.ndim == 2 else out


def identity(image: np.ndarray) -> np.ndarray:
    """The image itself (a control: imitation should be near-perfect)."""
    return image.copy()


def gaussian_blur(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels, reflect borders (linear)."""
    from skimage.filters import gaussian

    return _restore(
        gaussian(
            image, sigma=sigma, channel_axis=-1, mode="reflect", preserve_range=True, truncate=4.0
        )
    )


def unsharp(image: np.ndarray, radius: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """Unsharp mask ``x + amount * (x - gaussian_radius(x))``, clipped to [0, 1]."""
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(image.astype(np.float64), sigma=(radius, radius, 0), mode="reflect")
    return _restore(np.clip(image + amount * (image - blurred), 0.0, 1.0))


def tv_denoise(image: np.ndarray, weight: float = 0.1) -> np.ndarray:
    """Total-variation denoising (Chambolle), jointly over channels."""
    from skimage.restoration import denoise_tv_chambolle

    return _restore(
        denoise_tv_chambolle(
            _squeeze(image).astype(np.float64), weight=weight, channel_axis=_channels(image)
        )
    )


def bilateral(
    image: np.ndarray, sigma_color: float = 0.1, sigma_spatial: float = 2.0
) -> np.ndarray:
    """Bilateral edge-preserving smoothing (range ``sigma_color``, space ``sigma_spatial``)."""
    from skimage.restoration import denoise_bilateral

    return _restore(
        denoise_bilateral(
            _squeeze(image).astype(np.float64),
            sigma_color=sigma_color,
            sigma_spatial=sigma_spatial,
            channel_axis=_channels(image),
            mode="reflect",
        )
    )


def median(image: np.ndarray, size: int = 3) -> np.ndarray:
    """Median filter over a ``size x size`` window per channel."""
    from scipy.ndimage import median_filter

    return _restore(median_filter(image, size=(int(size), int(size), 1), mode="reflect"))


def nl_means(
    image: np.ndarray, h: float = 0.08, patch_size: int = 5, patch_distance: int = 6
) -> np.ndarray:
    """Non-local means denoising (fast mode), jointly over channels."""
    from skimage.restoration import denoise_nl_means

    return _restore(
        denoise_nl_means(
            _squeeze(image),
            h=h,
            patch_size=int(patch_size),
            patch_distance=int(patch_distance),
            fast_mode=True,
            channel_axis=_channels(image),
        )
    )
