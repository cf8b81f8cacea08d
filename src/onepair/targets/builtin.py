"""The zoo's built-in names: models and the degradations put in front of them.

These two literal tables are the only place a built-in name is resolved.
``load_target`` looks a spec's last part up in :data:`MODELS` (unless it
starts with an adapter prefix such as ``onnx:``) and every earlier part in
:data:`DEGRADATIONS`. Each entry is ``(function, one-line description)``; the
function's keyword parameters, with their defaults, are the name's parameters.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onepair import teachers
from onepair.targets import classical, deconvolve, degrade, effects, neural

# name -> (function(image, **params), one-line description)
MODELS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "identity": (classical.identity, "returns its input (a control)"),
    "gaussian-blur": (classical.gaussian_blur, "Gaussian blur, sigma in pixels (linear)"),
    "unsharp": (classical.unsharp, "unsharp-mask sharpening, clipped (near-linear)"),
    "tv-denoise": (classical.tv_denoise, "total-variation denoising, Chambolle"),
    "bilateral": (classical.bilateral, "bilateral edge-preserving filter"),
    "median": (classical.median, "median filter, size x size window"),
    "nl-means": (classical.nl_means, "non-local means denoising"),
    "wavelet-denoise": (classical.wavelet_denoise, "wavelet soft-threshold denoising, BayesShrink"),
    "bm3d": (
        classical.bm3d,
        "BM3D denoising; optional package bm3d (non-commercial licence); slow, 15-30 s",
    ),
    "cv-nl-means": (classical.cv_nl_means, "OpenCV fast non-local means, 8-bit"),
    "motion-blur": (deconvolve.motion_blur, "linear motion blur, length pixels at angle (linear)"),
    "richardson-lucy": (
        deconvolve.richardson_lucy,
        "Richardson-Lucy deconvolution of a Gaussian PSF",
    ),
    "wiener": (deconvolve.wiener, "Wiener deconvolution of a Gaussian PSF (linear, then clipped)"),
    "clahe": (classical.clahe, "contrast-limited adaptive histogram equalisation"),
    "sobel": (classical.sobel, "Sobel gradient magnitude per channel"),
    "canny": (classical.canny, "Canny edge map per channel, 0/1"),
    "bicubic-up": (effects.bicubic_up, "bicubic up-scaling by an integer factor (size x factor)"),
    "lanczos-up": (effects.lanczos_up, "Lanczos-4 up-scaling by an integer factor"),
    "jpeg": (effects.jpeg, "JPEG encode-decode round trip at a quality, gray or RGB"),
    "stylization": (effects.stylization, "OpenCV stylization (watercolour-like), 8-bit"),
    "detail-enhance": (effects.detail_enhance, "OpenCV detail enhancement, 8-bit"),
    "edge-preserving": (effects.edge_preserving, "OpenCV edge-preserving filter, 8-bit"),
    "grayscale": (effects.grayscale, "RGB -> 1-channel BT.709 luminance"),
    "sepia": (effects.sepia, "sepia toning; gray input gives RGB"),
    "gamma": (effects.gamma, "power law x ** gamma"),
    "saturation": (effects.saturation, "HSV saturation times factor, RGB"),
    "hed-stains": (
        effects.hed_stains,
        "IHC stain separation: haematoxylin, eosin, DAB channels (rgb2hed, fixed scale)",
    ),
    **neural.MODELS,
    **teachers.MODELS,
}

# name -> (function(image, rng, **params), one-line description)
DEGRADATIONS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "noise": (degrade.noise, "additive Gaussian noise, sigma on the 0..255 scale, seeded"),
    "poisson": (degrade.poisson, "Poisson shot noise, peak photons at white, seeded"),
    "blur": (degrade.blur, "Gaussian blur, sigma in pixels"),
    "downscale": (degrade.downscale, "area down-scaling by an integer factor (size / factor)"),
    "jpeg": (degrade.jpeg, "JPEG compression at a quality"),
    "hematoxylin": (
        degrade.hematoxylin,
        "RGB IHC slide -> its haematoxylin stain channel (the input of teacher-stain)",
    ),
}
