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
}
PREFIX = "builtin:"


def sample(name: str, size: int | None = None) -> np.ndarray:
    """Built-in image ``name``; with ``size``, its central ``size x size`` crop."""
    if name not in SAMPLES:
        raise ValueError(f"unknown built-in image {name!r}; known: {', '.join(SAMPLES)}")
    from skimage import data

    image = as_image(getattr(data, SAMPLES[name])(), f"builtin:{name}")
    if size is not None:
        h, w = image.shape[:2]
        if size > min(h, w):
            raise ValueError(f"builtin:{name} is {h}x{w}; cannot crop {size}x{size}")
        top, left = (h - size) // 2, (w - size) // 2
        image = image[top : top + size, left : left + size]
    return np.ascontiguousarray(image)


def read(source: str) -> np.ndarray:
    """An image from a file path or a ``builtin:NAME`` reference."""
    from onepair.images import load_image

    if str(source).startswith(PREFIX):
        return sample(str(source)[len(PREFIX) :])
    return load_image(source)
