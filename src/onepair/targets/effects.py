"""Resampling, JPEG, photo effects and colour transforms: pure, deterministic functions.

The same contract as :mod:`onepair.targets.classical` (image in the convention
plus keyword parameters, image out), but these may change the size
(``bicubic_up``/``lanczos_up`` multiply it) or the channels (``grayscale``
maps RGB to one channel, ``sepia`` gray to RGB, ``hed_stains`` RGB to three
stain channels). OpenCV and Pillow are imported inside the functions; the
OpenCV effects work on 8-bit images. Colour-only functions raise ValueError
for other channel counts.
"""

from __future__ import annotations

import numpy as np

from onepair.images import GRAY_WEIGHTS
from onepair.targets.classical import _opencv_rgb8, _require_rgb, _restore, _squeeze, _to_u8

# ----------------------------------------------------------------------------- resampling, JPEG


def _upscale(image: np.ndarray, factor: int, interpolation: int) -> np.ndarray:
    import cv2

    factor = int(factor)
    if factor < 1:
        raise ValueError(f"up-scaling factor is {factor}; expected an integer >= 1")
    size = (image.shape[1] * factor, image.shape[0] * factor)
    out = cv2.resize(np.ascontiguousarray(image), size, interpolation=interpolation)
    return _restore(np.clip(out, 0.0, 1.0))


def bicubic_up(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """Bicubic up-scaling by an integer ``factor`` (OpenCV, a = -0.75), clipped: (fH, fW, C)."""
    import cv2

    return _upscale(image, factor, cv2.INTER_CUBIC)


def lanczos_up(image: np.ndarray, factor: int = 2) -> np.ndarray:
    """Lanczos-4 (8x8 taps) up-scaling by an integer ``factor`` (OpenCV), clipped: (fH, fW, C)."""
    import cv2

    return _upscale(image, factor, cv2.INTER_LANCZOS4)


def jpeg(image: np.ndarray, quality: int = 30, subsample: bool = True) -> np.ndarray:
    """JPEG encode + decode in memory (Pillow/libjpeg) at ``quality`` 1..100.

    Gray or RGB only; RGB chroma is subsampled 4:2:0 unless ``subsample`` is false (4:4:4).
    """
    import io

    from PIL import Image

    if image.shape[2] not in (1, 3):
        raise ValueError(
            f"jpeg needs a 1- or 3-channel image; got {'x'.join(map(str, image.shape))}"
        )
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality is {quality}; expected 1..100")
    buffer = io.BytesIO()
    Image.fromarray(_to_u8(_squeeze(image))).save(
        buffer, format="JPEG", quality=int(quality), subsampling=2 if subsample else 0
    )
    buffer.seek(0)
    return _restore(np.asarray(Image.open(buffer)).astype(np.float32) / 255.0)


# ----------------------------------------------------------------------------- OpenCV photo effects


def stylization(image: np.ndarray, sigma_s: float = 60.0, sigma_r: float = 0.45) -> np.ndarray:
    """OpenCV ``stylization`` (watercolour-like abstraction), 8-bit; gray is replicated to RGB.

    OpenCV normalises by the image's largest gradient: a constant image comes back black.
    """
    import cv2

    return _opencv_rgb8(image, "stylization", lambda x: cv2.stylization(x, None, sigma_s, sigma_r))


def detail_enhance(image: np.ndarray, sigma_s: float = 10.0, sigma_r: float = 0.15) -> np.ndarray:
    """OpenCV ``detailEnhance`` (local-contrast boost), 8-bit; gray is replicated to RGB."""
    import cv2

    return _opencv_rgb8(
        image, "detail-enhance", lambda x: cv2.detailEnhance(x, None, sigma_s, sigma_r)
    )


def edge_preserving(
    image: np.ndarray, sigma_s: float = 60.0, sigma_r: float = 0.4, recursive: bool = True
) -> np.ndarray:
    """OpenCV ``edgePreservingFilter`` (recursive or normalised-convolution domain transform)."""
    import cv2

    flag = cv2.RECURS_FILTER if recursive else cv2.NORMCONV_FILTER
    return _opencv_rgb8(
        image,
        "edge-preserving",
        lambda x: cv2.edgePreservingFilter(x, None, flag, sigma_s, sigma_r),
    )


# ----------------------------------------------------------------------------- colour

SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32
)  # rows: output R, G, B
# rgb2hed stain amounts (optical density / ln(1e6)) mapped to [0, 1] by dividing by these and
# clipping: the 99.9th percentiles of skimage's IHC sample are 0.078 (H) and 0.27 (DAB).
HED_MAX = np.array([0.1, 0.1, 0.3], np.float32)


def grayscale(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> luminance (H, W, 1) with the BT.709 weights :data:`GRAY_WEIGHTS`."""
    _require_rgb(image, "grayscale")
    return (image @ GRAY_WEIGHTS)[:, :, None].astype(np.float32)


def sepia(image: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """Sepia toning by the classic :data:`SEPIA` matrix, blended by ``amount``, clipped.

    Gray input is replicated to RGB first, so it returns 3 channels (a 1 -> 3 target).
    """
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    _require_rgb(image, "sepia")
    toned = image @ SEPIA.T
    return np.clip((1.0 - amount) * image + amount * toned, 0.0, 1.0).astype(np.float32)


def gamma(image: np.ndarray, gamma: float = 0.5) -> np.ndarray:
    """Power law ``x ** gamma`` per channel (gamma < 1 brightens, 1 is the identity)."""
    return np.power(np.clip(image, 0.0, 1.0), np.float32(gamma)).astype(np.float32)


def saturation(image: np.ndarray, factor: float = 1.8) -> np.ndarray:
    """Multiply HSV saturation by ``factor`` (clipped to [0, 1]); RGB only."""
    from skimage.color import hsv2rgb, rgb2hsv

    _require_rgb(image, "saturation")
    hsv = rgb2hsv(image.astype(np.float64))
    hsv[:, :, 1] = np.clip(hsv[:, :, 1] * factor, 0.0, 1.0)
    return np.clip(hsv2rgb(hsv), 0.0, 1.0).astype(np.float32)


def hed_stains(image: np.ndarray) -> np.ndarray:
    """Stain separation of an IHC/H&E RGB image: (H, W, 3) haematoxylin, eosin, DAB.

    ``clip(skimage.color.rgb2hed(image) / HED_MAX, 0, 1)`` with the fixed :data:`HED_MAX`.
    """
    from skimage.color import rgb2hed

    _require_rgb(image, "hed-stains")
    return np.clip(rgb2hed(image.astype(np.float64)) / HED_MAX, 0.0, 1.0).astype(np.float32)
