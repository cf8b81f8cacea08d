"""Degradation front ends: what happens to an image before the model sees it.

In a spec like ``noise:sigma=25|tv-denoise:weight=0.1`` the noise makes the
model's input (the noisy photograph a denoiser is meant for); the pair is
``(noisy, model(noisy))``. Each function takes the image and a seeded
``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np


def noise(
    image: np.ndarray, rng: np.random.Generator, sigma: float = 25.0, clip: bool = True
) -> np.ndarray:
    """Additive white Gaussian noise of std ``sigma`` on the 0..255 scale, clipped to [0, 1]."""
    noisy = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return np.clip(noisy, 0.0, 1.0) if clip else noisy.astype(np.float32)
