"""Degradation front ends: what happens to an image before the model sees it.

In a spec like ``noise:sigma=25|tv-denoise:weight=0.1`` the noise makes the
model's input (the noisy photograph a denoiser is meant for); the pair is
``(noisy, model(noisy))``. Each function takes the image and a seeded
``numpy.random.Generator`` (noise and poisson draw from it; blur, downscale
and jpeg are deterministic and ignore it). ``downscale`` makes the input
smaller, so in front of an up-scaling model it makes a super-resolution pair.
"""

from __future__ import annotations

import numpy as np

from onepair.targets import classical, effects


def noise(
    image: np.ndarray, rng: np.random.Generator, sigma: float = 25.0, clip: bool = True
) -> np.ndarray:
    """Additive white Gaussian noise of std ``sigma`` on the 0..255 scale, clipped to [0, 1]."""
    noisy = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma / 255.0)
    return np.clip(noisy, 0.0, 1.0) if clip else noisy.astype(np.float32)


def poisson(
    image: np.ndarray, rng: np.random.Generator, peak: float = 30.0, clip: bool = True
) -> np.ndarray:
    """Poisson (shot) noise ``Poisson(peak * x) / peak``: a pixel of value x has variance x / peak.

    ``peak`` is the photon count of a white pixel (lower is noisier); clipped to [0, 1].
    """
    if peak <= 0:
        raise ValueError(f"poisson peak is {peak}; expected a positive photon count")
    counts = rng.poisson(np.clip(image, 0.0, None).astype(np.float64) * peak)
    noisy = (counts / peak).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0) if clip else noisy


def blur(image: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    """Gaussian blur of std ``sigma`` pixels (deterministic; ``rng`` is unused)."""
    return classical.gaussian_blur(image, sigma=sigma)


def downscale(image: np.ndarray, rng: np.random.Generator, factor: int = 2) -> np.ndarray:
    """Down-scaling by area averaging over ``factor x factor`` blocks: (H // f, W // f, C).

    Rows and columns beyond a multiple of ``factor`` are dropped. In front of an
    up-scaling model it makes a super-resolution pair: ``downscale:factor=2|bicubic-up:factor=2``.
    """
    factor = int(factor)
    h, w, c = image.shape[0] // max(factor, 1), image.shape[1] // max(factor, 1), image.shape[2]
    if factor < 1 or h == 0 or w == 0:
        raise ValueError(
            f"cannot down-scale a {image.shape[0]}x{image.shape[1]} image by factor {factor}; "
            "expected an integer factor >= 1 no larger than the image"
        )
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, c)
    return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def jpeg(
    image: np.ndarray, rng: np.random.Generator, quality: int = 30, subsample: bool = True
) -> np.ndarray:
    """JPEG compression at ``quality`` (:func:`effects.jpeg`; deterministic, ``rng`` unused)."""
    return effects.jpeg(image, quality=quality, subsample=subsample)


def hematoxylin(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The haematoxylin stain of an RGB IHC image, (H, W, 3) -> (H, W, 1) in [0, 1].

    The front end of virtual staining (``hematoxylin|teacher-stain``): the single
    grey channel the stain teacher turns into the RGB slide. Deterministic
    (``rng`` unused); :func:`onepair.teacher_data.stain_input`.
    """
    from onepair.teacher_data import stain_input

    return stain_input(image)
