"""Classical image-processing models, each a pure, deterministic function.

Every function takes an image in the convention ((H, W, C) float32 in [0, 1])
plus keyword parameters, and returns one; the parameter defaults are the
zoo's (denoisers tuned for Gaussian noise of sigma 25 on the 0..255 scale).
Sources: scikit-image and SciPy; OpenCV and the optional ``bm3d`` package are
imported inside the functions. All keep the size and channel count. Resampling,
JPEG, photo effects and colour transforms are in :mod:`onepair.targets.effects`;
motion blur and deconvolution in :mod:`onepair.targets.deconvolve`.
"""

from __future__ import annotations

from collections.abc import Callable

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


# ----------------------------------------------------------------------------- helpers


def _per_channel(image: np.ndarray, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a 2-D ``function`` to each channel and stack the results as float32 (H, W, C)."""
    return np.stack([function(image[:, :, c]) for c in range(image.shape[2])], axis=-1).astype(
        np.float32
    )


def _require_rgb(image: np.ndarray, name: str) -> None:
    if image.shape[2] != 3:
        raise ValueError(
            f"{name} needs an RGB image (H, W, 3); got {'x'.join(map(str, image.shape))}"
        )


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _opencv_rgb8(
    image: np.ndarray, name: str, function: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run an OpenCV filter that needs 8-bit BGR: gray is replicated in and averaged out."""
    if image.shape[2] not in (1, 3):
        raise ValueError(
            f"{name} needs a 1- or 3-channel image; got {'x'.join(map(str, image.shape))}"
        )
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    out = function(np.ascontiguousarray(_to_u8(rgb)[:, :, ::-1]))[:, :, ::-1]
    out = out.astype(np.float32) / 255.0
    return out.mean(axis=2, keepdims=True) if image.shape[2] == 1 else np.ascontiguousarray(out)


# ----------------------------------------------------------------------------- denoisers


def wavelet_denoise(
    image: np.ndarray, sigma: float = 25.0, wavelet: str = "db2", method: str = "BayesShrink"
) -> np.ndarray:
    """Wavelet soft-threshold denoising (scikit-image), noise ``sigma`` on the 0..255 scale.

    RGB is denoised in YCbCr. Needs PyWavelets.
    """
    from skimage.restoration import denoise_wavelet

    out = denoise_wavelet(
        _squeeze(image).astype(np.float64),
        sigma=sigma / 255.0,
        wavelet=wavelet,
        mode="soft",
        method=method,
        convert2ycbcr=image.shape[2] == 3,
        channel_axis=_channels(image),
        rescale_sigma=True,
    )
    return _restore(np.clip(out, 0.0, 1.0))


def bm3d(image: np.ndarray, sigma: float = 25.0) -> np.ndarray:
    """BM3D denoising (package ``bm3d``, optional), noise ``sigma`` on the 0..255 scale.

    RGB uses the colour variant (gray repeated to RGB the gray one); other channel counts
    are denoised per channel.
    Slow: about 15-30 s per 256x256 RGB image (one thread, so that it is deterministic).
    """
    try:
        import bm3d as bm3d_package
    except ImportError as error:
        raise ValueError(
            "target bm3d needs the optional package bm3d: pip install bm3d "
            "(its licence allows non-commercial use only, so onepair does not install it)"
        ) from error
    noise = sigma / 255.0
    profile = bm3d_package.BM3DProfile()
    profile.num_threads = 1  # more threads change the sums' order: outputs differ by ~1e-7
    gray = (
        image.shape[2] == 3
        and np.array_equal(image[..., 0], image[..., 1])
        and np.array_equal(image[..., 0], image[..., 2])
    )
    if gray:  # the colour path divides by the empty chroma channels' zero range (all NaN)
        out = np.repeat(
            bm3d_package.bm3d(image[..., :1].astype(np.float64), noise, profile).reshape(
                image.shape[:2] + (1,)
            ),
            3,
            axis=2,
        )
    elif image.shape[2] == 3:
        out = bm3d_package.bm3d_rgb(image.astype(np.float64), noise, profile)
    else:
        out = _per_channel(image.astype(np.float64), lambda c: bm3d_package.bm3d(c, noise, profile))
    return _restore(np.clip(out, 0.0, 1.0))


def cv_nl_means(
    image: np.ndarray,
    h: float = 24.0,
    h_rgb: float = 15.0,
    template_size: int = 7,
    search_size: int = 21,
) -> np.ndarray:
    """OpenCV fast non-local means on the 8-bit image, strengths on the 0..255 scale.

    Gray (and non-RGB channels, one by one) use ``h``; RGB uses the coloured
    variant with ``h_rgb`` for both Lab luminance and colour. The defaults are
    the best of a sweep under Gaussian noise of sigma 25 (astronaut, camera,
    coffee crops). Output is quantised to 8 bits.
    """
    import cv2

    args = (int(template_size), int(search_size))
    if image.shape[2] == 3:
        bgr = np.ascontiguousarray(_to_u8(image)[:, :, ::-1])
        out = cv2.fastNlMeansDenoisingColored(bgr, None, h_rgb, h_rgb, *args)[:, :, ::-1]
        return np.ascontiguousarray(out).astype(np.float32) / 255.0
    return _per_channel(
        image, lambda c: cv2.fastNlMeansDenoising(_to_u8(c), None, h, *args) / 255.0
    )


# ----------------------------------------------------------------------------- contrast and edges


def clahe(image: np.ndarray, clip_limit: float = 0.01, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on ``tiles x tiles`` regions.

    scikit-image's ``equalize_adapthist``: RGB is equalised on the HSV value;
    other channel counts per channel.
    """
    from skimage.exposure import equalize_adapthist

    size = (max(image.shape[0] // int(tiles), 1), max(image.shape[1] // int(tiles), 1))

    def run(x: np.ndarray) -> np.ndarray:
        return equalize_adapthist(x.astype(np.float64), kernel_size=size, clip_limit=clip_limit)

    out = run(image) if image.shape[2] == 3 else _per_channel(image, run)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def sobel(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude per channel, ``sqrt((gx^2 + gy^2) / 2)`` (scikit-image)."""
    from skimage.filters import sobel as sobel_filter

    return np.clip(
        _per_channel(image, lambda c: sobel_filter(c.astype(np.float64), mode="reflect")), 0, 1
    )


def canny(image: np.ndarray, sigma: float = 1.5, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """Canny edges per channel: a 0/1 map (float), hysteresis thresholds ``low``/``high``."""
    from skimage.feature import canny as canny_edges

    return _per_channel(
        image,
        lambda c: canny_edges(
            c.astype(np.float64), sigma=sigma, low_threshold=low, high_threshold=high
        ),
    )
