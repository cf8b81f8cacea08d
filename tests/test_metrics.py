"""metrics.py: known values, invariants and agreement with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from onepair.metrics import psnr, ssim


def test_psnr_known_values():
    ones = np.ones((8, 8, 1))
    assert psnr(ones, 1.2 * ones, data_range=2.0) == pytest.approx(20.0)
    assert psnr(ones, 0.9 * ones) == pytest.approx(20.0)
    assert psnr(ones, ones) == math.inf


def test_ssim_of_identical_images_is_one(photo):
    assert ssim(photo, photo) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(37, 31, 1), (40, 33, 3), (11, 11, 2)])
def test_agrees_with_scikit_image(rng, shape):
    x = rng.random(shape).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-4)
    reference = structural_similarity(
        x,
        y,
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert ssim(x, y) == pytest.approx(reference, abs=1e-5)


def test_more_noise_means_lower_scores(photo, rng):
    noise = rng.normal(0, 1, photo.shape).astype(np.float32)
    scores = [
        (psnr(photo, photo + s * noise), ssim(photo, photo + s * noise)) for s in (0.01, 0.03, 0.1)
    ]
    assert scores[0][0] > scores[1][0] > scores[2][0]
    assert scores[0][1] > scores[1][1] > scores[2][1]


def test_shape_mismatch_says_both_shapes():
    with pytest.raises(ValueError, match="8x8x1 vs 8x9x1"):
        psnr(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
