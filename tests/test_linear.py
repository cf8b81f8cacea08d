"""The linear path and Theorem 1: least squares on one example recovers a linear filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onepair.images import from_tensor, to_tensor
from onepair.models.linear import LinearFilter


def apply_kernel(image, kernel, bias, scale=1):
    weight = torch.from_numpy(kernel).float()
    y = F.conv2d(
        to_tensor(image), weight, torch.from_numpy(bias).float(), padding=kernel.shape[-1] // 2
    )
    return from_tensor(F.pixel_shuffle(y, scale) if scale > 1 else y)


def test_recovers_a_random_kernel_exactly_from_one_example(photo, rng):
    kernel = rng.normal(0, 0.2, (3, 3, 5, 5))
    bias = rng.normal(0, 0.1, 3)
    y = apply_kernel(photo, kernel, bias)
    f = LinearFilter(3, 3, 1, 5)
    f.solve(photo, y, ridge=0.0)
    np.testing.assert_allclose(f.weight.numpy(), kernel, atol=1e-4)
    np.testing.assert_allclose(f.bias.numpy(), bias, atol=1e-4)


def test_recovers_a_linear_super_resolution_filter(photo, rng):
    gray = photo[..., :1]
    kernel = rng.normal(0, 0.2, (4, 1, 3, 3))  # 2x2 output phases of one channel
    y = apply_kernel(gray, kernel, np.zeros(4), scale=2)
    f = LinearFilter(1, 1, 2, 3)
    f.solve(gray, y, ridge=0.0)
    np.testing.assert_allclose(f.weight.numpy(), kernel, atol=1e-4)
    with torch.no_grad():
        np.testing.assert_allclose(from_tensor(f(to_tensor(gray))), y, atol=1e-4)


def test_projection_when_patches_do_not_span_the_kernel_space(rng):
    """A constant image constrains only the kernel's sum: least squares finds that sum."""
    flat = np.full((30, 30, 1), 0.5, np.float32)
    kernel = rng.normal(0, 0.2, (1, 1, 3, 3))
    y = apply_kernel(flat, kernel, np.zeros(1))
    f = LinearFilter(1, 1, 1, 3)
    f.solve(flat, y)
    fitted = f.weight.numpy().sum() * 0.5 + f.bias.numpy()[0]
    assert abs(fitted - kernel.sum() * 0.5) < 1e-4


def test_a_subset_of_positions_in_small_chunks_gives_the_same_filter(photo, rng):
    kernel = rng.normal(0, 0.2, (3, 3, 5, 5))
    y = apply_kernel(photo, kernel, np.zeros(3))
    f = LinearFilter(3, 3, 1, 5)
    f.solve(photo, y, ridge=0.0, max_rows=3000, chunk_rows=700)  # of 7,0xx positions
    np.testing.assert_allclose(f.weight.numpy(), kernel, atol=1e-4)


@pytest.mark.parametrize(("cin", "cout", "scale", "kernel"), [(3, 3, 1, 15), (1, 3, 2, 9)])
def test_fft_path_equals_the_direct_convolution(cin, cout, scale, kernel, rng):
    from onepair.models.linear import FFT_MIN_SIDE

    linear = LinearFilter(cin, cout, scale, kernel)
    linear.weight.copy_(torch.from_numpy(rng.normal(0, 0.1, linear.weight.shape)))
    linear.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, linear.bias.shape)))
    x = torch.from_numpy(rng.random((2, cin, FFT_MIN_SIDE + 7, FFT_MIN_SIDE + 30))).float()
    direct = F.conv2d(x, linear.weight, linear.bias, padding=kernel // 2)
    direct = F.pixel_shuffle(direct, scale) if scale > 1 else direct
    torch.testing.assert_close(linear(x), direct, atol=1e-5, rtol=0)
    linear, x = linear.double(), x.double()  # a float64 network keeps float64 precision
    direct = F.conv2d(x, linear.weight, linear.bias, padding=kernel // 2)
    direct = F.pixel_shuffle(direct, scale) if scale > 1 else direct
    assert linear(x).dtype == torch.float64
    torch.testing.assert_close(linear(x), direct, atol=1e-11, rtol=0)


def test_fft_spectra_follow_the_weights_across_tile_sizes(rng):
    from onepair.models.linear import FFT_MIN_SIDE

    linear = LinearFilter(3, 3, 1, 15)
    sizes = [(FFT_MIN_SIDE + d, FFT_MIN_SIDE + 2 * d) for d in range(6)]  # more than it keeps
    for _ in range(2):  # new weights in place: no spectrum of the old ones may be used
        linear.weight.copy_(torch.from_numpy(rng.normal(0, 0.1, linear.weight.shape)))
        for h, w in sizes + sizes[:2]:
            x = torch.from_numpy(rng.random((1, 3, h, w))).float()
            direct = F.conv2d(x, linear.weight, linear.bias, padding=7)
            torch.testing.assert_close(linear(x), direct, atol=1e-5, rtol=0)


def test_a_tile_sizes_kernel_spectrum_is_computed_once():
    from onepair.models.linear import Spectra

    spectra, weight = Spectra(), torch.rand(3, 3, 7, 7)
    sizes = [(100 + d, 120) for d in range(4)]  # as many as it keeps: full, last row, ...
    first = {size: spectra(weight, size, torch.float32) for size in sizes}
    assert first[sizes[0]].shape == (3, 100, 61, 3)  # (Cin, H', W'/2+1, Cout)
    for _ in range(2):
        for size in sizes:
            assert spectra(weight, size, torch.float32) is first[size]
    weight.mul_(2)  # new weights in place: computed again
    assert spectra(weight, sizes[0], torch.float32) is not first[sizes[0]]
