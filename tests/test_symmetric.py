"""Solving the linear paths on the example under flips and rotations (``transforms``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onepair import dihedral
from onepair.images import from_tensor, to_tensor
from onepair.models.adaptive import AdaptiveFilter
from onepair.models.cascade import CascadeFilter
from onepair.models.linear import LinearFilter
from test_adaptive import applied, denoised

ALL = list(dihedral.TRANSFORMS)


def under(image, name):
    return np.ascontiguousarray(dihedral.forward(image, name))


def nonlinear(x, scale):
    """A target that is not linear; at scale 2 its four output phases differ."""
    y = np.tanh(3 * (x - 0.5)) ** 2 + x
    if scale == 1:
        return y
    up = F.interpolate(to_tensor(y), scale_factor=scale, mode="bicubic", align_corners=False)
    return from_tensor(up) * (1 + 0.2 * np.sin(np.arange(scale * x.shape[1])))[None, :, None]


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("names", [ALL, ["identity", "flip-lr", "transpose"]])
def test_the_permuted_system_is_that_of_the_transformed_examples(scale, names, rng):
    x = rng.random((24, 20, 2)).astype(np.float32)
    y = nonlinear(x, scale)[..., :1]
    keep = rng.random((24, 20)) > 0.3
    permuted, copied = LinearFilter(2, 1, scale, 5), LinearFilter(2, 1, scale, 5)
    permuted.solve(x, y, ridge=1e-3, keep=[keep], transforms=names)
    copied.solve(
        [under(x, g) for g in names],
        [under(y, g) for g in names],
        ridge=1e-3,
        max_rows=10**6,
        keep=[under(keep, g) for g in names],
    )
    assert torch.allclose(permuted.weight, copied.weight, atol=1e-5)
    assert torch.allclose(permuted.bias, copied.bias, atol=1e-5)
    plain = LinearFilter(2, 1, scale, 5)
    plain.solve(x, y, ridge=1e-3, keep=[keep])
    assert not torch.allclose(plain.weight, copied.weight, atol=1e-3)  # the transforms count


def test_input_phases_are_permuted_like_the_output_s(rng):
    """A second stage at scale 2 sees the first stage's output pixel-unshuffled: a flip
    moves those channels' phases too."""
    x = rng.random((16, 16, 1)).astype(np.float32)
    z = rng.random((32, 32, 1)).astype(np.float32)  # an earlier stage's x2 output

    def joined(a, b):
        return np.concatenate([a, from_tensor(F.pixel_unshuffle(to_tensor(b), 2))], -1)

    y = nonlinear(x, 2) * z
    permuted, copied = LinearFilter(5, 1, 2, 3), LinearFilter(5, 1, 2, 3)
    permuted.phased_from = copied.phased_from = 1
    permuted.solve(joined(x, z), y, ridge=1e-3, transforms=ALL)
    copied.solve(
        [joined(under(x, g), under(z, g)) for g in ALL],
        [under(y, g) for g in ALL],
        ridge=1e-3,
        max_rows=10**6,
    )
    assert torch.allclose(permuted.weight, copied.weight, atol=1e-5)
    # without knowing which channels are phases the permutation is wrong
    unaware = LinearFilter(5, 1, 2, 3)
    unaware.solve(joined(x, z), y, ridge=1e-3, transforms=ALL)
    assert not torch.allclose(unaware.weight, copied.weight, atol=1e-3)


@pytest.mark.parametrize(
    "path, scale",
    [
        (LinearFilter(3, 3, 1, 7), 1),
        (AdaptiveFilter(3, 3, 1, 7, bins=3), 1),
        (AdaptiveFilter(3, 3, 2, 5, bins=3), 2),
        (CascadeFilter(3, 3, 1, 7, 3, 5, 2), 1),
        (CascadeFilter(3, 3, 2, 5, 3, 3, 2), 2),
    ],
    ids=["linear", "adaptive", "adaptive-x2", "cascade", "cascade-x2"],
)
def test_a_path_solved_under_all_eight_commutes_with_them(path, scale, photo):
    noisy, clean = denoised("astronaut", 0)
    path.solve(noisy, nonlinear(clean, scale), transforms=ALL)
    new = photo[:64, :64]
    plain = applied(path, new)
    for name in ALL[1:]:
        turned = dihedral.inverse(applied(path, under(new, name)), name)
        assert np.abs(turned - plain).max() < 1e-4, name


def test_transforms_change_the_adaptive_solution_as_extra_examples_would():
    """Against the same path solved on the eight transformed examples as separate pairs
    (whose knots are quantiles of eight copies, hence not quite the same)."""
    noisy, clean = denoised("astronaut", 0)
    permuted, copied, plain = (AdaptiveFilter(3, 3, 1, 7, bins=3) for _ in range(3))
    permuted.solve(noisy, clean, transforms=ALL)
    copied.solve([under(noisy, g) for g in ALL], [under(clean, g) for g in ALL], max_rows=10**6)
    plain.solve(noisy, clean)
    other, _ = denoised("coffee", 1)
    a, b, c = (applied(p, other) for p in (permuted, copied, plain))
    assert np.abs(a - b).max() < 0.25 * np.abs(c - b).max()
