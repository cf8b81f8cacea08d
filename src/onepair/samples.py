"""Built-in test images: the photographs scikit-image ships (no downloads).

``sample("astronaut")`` returns one in the image convention; ``builtin:NAME``
is accepted wherever onepair takes an image path.
"""

from __future__ import annotations

import numpy as np

from onepair.images import as_image

# name -> scikit-image data function name; every one ships inside the wheel.
SAMPLES = {
    "astronaut": "astronaut",
    "coffee": "coffee",
    "chelsea": "chelsea",
    "rocket": "rocket",
    "ihc": "immunohistochemistry",
    "hubble": "hubble_deep_field",
    "retina": "retina",
    "camera": "camera",
    "moon": "moon",
    "coins": "coins",
    "text": "text",
    "page": "page",
    "brick": "brick",
    "grass": "grass",
    "gravel": "gravel",
    "motorcycle": "stereo_motorcycle",  # the left view of the stereo pair
}
PREFIX = "builtin:"


def sample(name: str, size: int | None = None) -> np.ndarray:
    """Built-in image ``name``; with ``size``, its central ``size x size`` crop."""
    if name not in SAMPLES:
        raise ValueError(f"unknown built-in image {name!r}; known: {', '.join(SAMPLES)}")
    from skimage import data

    loaded = getattr(data, SAMPLES[name])()
    if isinstance(loaded, tuple):  # a stereo pair and its disparity: the first view
        loaded = loaded[0]
    image = as_image(loaded, f"builtin:{name}")
    return image if size is None else crop_center(image, size, f"builtin:{name}")


def crop_center(image: np.ndarray, size: int, name: str = "image") -> np.ndarray:
    """The central ``size x size`` crop of ``image`` (H, W, C)."""
    h, w = image.shape[:2]
    if not 1 <= size <= min(h, w):
        raise ValueError(f"{name} is {h}x{w}; cannot crop {size}x{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def read(source: str) -> np.ndarray:
    """An image from a file path or a ``builtin:NAME`` reference."""
    from onepair.images import load_image

    if str(source).startswith(PREFIX):
        return sample(str(source)[len(PREFIX) :])
    return load_image(source)
