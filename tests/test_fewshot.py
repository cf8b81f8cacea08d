"""Few-shot: several example pairs feed one fit (crops, linear path, held-out blocks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY_FIT, TINY_MODEL
from onepair.crops import CropSampler
from onepair.fit import fit
from onepair.images import save_image
from onepair.models.linear import LinearFilter
from onepair.pairs import Pair
from test_cli import TINY, invoke
from test_linear import apply_kernel


def test_linear_path_pools_examples_that_alone_do_not_span_the_kernel(rng):
    """Each 10x12 example holds 24 patches for 50 unknowns; three hold enough (Theorem 1)."""
    kernel = rng.normal(0, 0.2, (1, 1, 7, 7))
    xs = [rng.random((10, 12, 1)).astype(np.float32) for _ in range(3)]
    ys = [apply_kernel(x, kernel, np.zeros(1)) for x in xs]
    alone = LinearFilter(1, 1, 1, 7)
    alone.solve(xs[0], ys[0], ridge=0.0)
    assert np.abs(alone.weight.numpy() - kernel).max() > 0.05
    pooled = LinearFilter(1, 1, 1, 7)
    pooled.solve(xs, ys, ridge=0.0)
    np.testing.assert_allclose(pooled.weight.numpy(), kernel, atol=1e-4)


def test_crops_come_from_every_example_and_stay_aligned(photo):
    # example a holds values below 0.5, example b above: a crop tells where it came from
    a = Pair.of(photo[:40, :40] * 0.4, 1 - photo[:40, :40] * 0.4)
    b = Pair.of(0.6 + photo[40:, :] * 0.4, 0.4 - photo[40:, :] * 0.4)  # 56 x 80: more positions
    sampler = CropSampler([a, b], crop=16)
    generator = torch.Generator().manual_seed(0)
    from_b = 0
    for _ in range(50):
        x, y, w = sampler.sample(8, generator)
        assert w is None  # no held-out blocks given
        torch.testing.assert_close(y, 1 - x)  # aligned: the output crop of the same place
        in_b = x.amin(dim=(1, 2, 3)) >= 0.6
        assert torch.all(in_b | (x.amax(dim=(1, 2, 3)) <= 0.4))
        from_b += int(in_b.sum())
    # positions: a has 25*25, b 41*65; b should get about 81% of the crops
    assert 0.72 < from_b / 400 < 0.9


def test_fit_on_two_pairs(photo):
    from onepair.targets import load_target

    target = load_target("gaussian-blur:sigma=1")
    first, second = photo[:, :40], photo[:, 40:]
    pairs = [Pair.of(x, target(x)) for x in (first, second)]
    imitator = fit(pairs, TINY_MODEL, TINY_FIT, show_progress=False)
    assert imitator.metrics["examples"] == 2
    assert imitator.metrics["val_psnr"] > imitator.metrics["val_floor_psnr"] + 5


def test_fit_refuses_examples_that_disagree(photo):
    gray = photo[..., :1]
    with pytest.raises(ValueError, match="example 1 maps 1 -> 1 channels .* example 0 maps 3 -> 3"):
        fit([Pair.of(photo, photo), Pair.of(gray, gray)], TINY_MODEL, TINY_FIT, show_progress=False)
    with pytest.raises(ValueError, match="no example pairs"):
        fit([], TINY_MODEL, TINY_FIT, show_progress=False)


def test_cli_fit_takes_several_pairs_and_pair_folders(tmp_path, photo):
    for name, image in (("a", photo[:, :40]), ("b", photo[:, 40:])):
        save_image(tmp_path / name / "input.png", image)
        save_image(tmp_path / name / "output.png", 1 - image)
    result = invoke(
        "fit",
        tmp_path / "a",
        tmp_path / "b" / "input.png",
        tmp_path / "b" / "output.png",
        "-o",
        tmp_path / "run",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["examples"] == 2
    odd = invoke("fit", tmp_path / "a", tmp_path / "b" / "input.png", "-o", tmp_path / "r2")
    assert odd.exit_code == 2 and "has no partner" in odd.output
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = invoke("fit", empty, "-o", tmp_path / "r3")
    assert bad.exit_code == 2 and "not a pair folder" in bad.output


def test_crop_sampler_refuses_examples_that_disagree(photo):
    with pytest.raises(ValueError, match=r"examples differ .* \[\(1, 1, 1\), \(3, 3, 1\)\]"):
        CropSampler([Pair.of(photo, photo), Pair.of(photo[..., :1], photo[..., :1])], crop=16)
