"""pairs.py: validation of the example, scale factor, held-out strip."""

from __future__ import annotations

import numpy as np
import pytest

from onepair.pairs import Pair, baseline, check_size


def test_scale_and_channels_are_inferred():
    pair = Pair.of(np.zeros((10, 12)), np.zeros((30, 36, 3)))
    assert (pair.scale, pair.in_channels, pair.out_channels) == (3, 1, 3)
    assert Pair.of(np.zeros((10, 12, 3)), np.zeros((10, 12, 3))).scale == 1


@pytest.mark.parametrize(
    ("out_shape", "arrived"),
    [
        ((510, 512, 3), "512x512x3 but output is 510x512x3"),
        ((1024, 1536, 3), "output is 1024x1536x3"),
        ((256, 256, 3), "output is 256x256x3"),
    ],
)
def test_size_mismatch_says_what_arrived(out_shape, arrived):
    with pytest.raises(ValueError, match=arrived) as info:
        Pair.of(np.zeros((512, 512, 3)), np.zeros(out_shape))
    assert "integer scale factor" in str(info.value)


def test_too_small_examples_are_errors_that_say_so():
    pair = Pair.of(np.zeros((40, 40)), np.zeros((40, 40)))
    with pytest.raises(ValueError, match="training crops are 64x64"):
        check_size(pair, crop=64, receptive_field=5)
    with pytest.raises(ValueError, match="receptive field is 101x101"):
        check_size(pair, crop=16, receptive_field=101)


def test_baseline_upscales_and_repeats_gray():
    x = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    assert baseline(x, np.zeros((16, 16, 3))).shape == (16, 16, 3)
    assert baseline(np.zeros((8, 8, 3)), np.zeros((8, 8, 2))) is None
