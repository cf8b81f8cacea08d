"""The adaptive linear path: filters blended per pixel by gradient strength."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_FIT, TINY_MODEL
from onepair import dihedral
from onepair.fit import fit
from onepair.images import from_tensor, to_tensor
from onepair.imitator import Imitator
from onepair.metrics import psnr
from onepair.models import FilterConfig, UNetConfig, build
from onepair.models.adaptive import AdaptiveFilter
from onepair.models.cascade import CascadeFilter
from onepair.models.linear import LinearFilter
from onepair.pairs import Pair
from onepair.samples import sample


def filtered(image, kernel, bias, scale=1):
    y = F.conv2d(
        to_tensor(image),
        torch.from_numpy(kernel).float(),
        torch.from_numpy(bias).float(),
        padding=kernel.shape[-1] // 2,
    )
    return from_tensor(F.pixel_shuffle(y, scale) if scale > 1 else y)


def applied(path, image):
    """``path`` on a whole image, borders reflected as apply does."""
    r = path.radius
    padded = np.pad(image, ((r, r), (r, r), (0, 0)), mode="reflect")
    with torch.no_grad():
        y = from_tensor(path(to_tensor(padded)))
    s = path.scale
    return y[s * r : y.shape[0] - s * r, s * r : y.shape[1] - s * r]


def denoised(name, seed):
    """A noisy 128 x 128 crop of a built-in photograph and its TV-denoised output: a
    denoiser that smooths flat regions and keeps edges."""
    from skimage.restoration import denoise_tv_chambolle

    clean = sample(name, 128)
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, 0.1, clean.shape), 0, 1)
    noisy = noisy.astype(np.float32)
    return noisy, denoise_tv_chambolle(noisy, weight=0.1, channel_axis=-1).astype(np.float32)


def test_a_linear_target_is_every_bins_filter(photo, rng):
    kernel, bias = rng.normal(0, 0.2, (3, 3, 5, 5)), rng.normal(0, 0.1, 3)
    y = filtered(photo, kernel, bias)
    path = AdaptiveFilter(3, 3, 1, 5, bins=4)
    path.solve(photo, y, ridge=0.0)
    for b in range(4):
        np.testing.assert_allclose(path.bank.weight[3 * b : 3 * b + 3].numpy(), kernel, atol=1e-3)
        np.testing.assert_allclose(path.bank.bias[3 * b : 3 * b + 3].numpy(), bias, atol=1e-3)
    with torch.no_grad():
        np.testing.assert_allclose(from_tensor(path(to_tensor(photo))), y, atol=1e-3)


def test_a_linear_up_scaler_is_copied_exactly(photo, rng):
    gray = photo[..., :1]
    kernel = rng.normal(0, 0.2, (4, 1, 3, 3))  # 2x2 output phases of one channel
    y = filtered(gray, kernel, np.zeros(4), scale=2)
    path = AdaptiveFilter(1, 1, 2, 3, bins=3)
    path.solve(gray, y, ridge=0.0)
    assert applied(path, gray).shape == y.shape
    with torch.no_grad():
        np.testing.assert_allclose(from_tensor(path(to_tensor(gray))), y, atol=1e-3)


def test_each_pixel_blends_two_neighbouring_bins_and_the_knots_span_the_example(photo):
    path = AdaptiveFilter(3, 3, 1, 5, bins=5)
    path.solve(photo, photo**2)
    strengths = path._strength_image(photo)
    knots = path.knots.numpy()
    assert np.all(np.diff(knots) > 0)
    assert knots[0] == pytest.approx(strengths.min()) and knots[-1] == pytest.approx(
        strengths.max()
    )
    weights = path.blend(to_tensor(photo))[0].numpy()  # (bins, H, W)
    assert weights.shape == (5,) + photo.shape[:2] and weights.min() >= 0
    np.testing.assert_allclose(weights.sum(0), 1.0, atol=1e-6)
    used = weights > 0
    assert used.sum(0).max() <= 2
    first, last = used.argmax(0), 4 - used[::-1].argmax(0)
    assert np.all(last - first <= 1)  # neighbours only
    assert used.any(axis=(1, 2)).all()  # every bin serves some pixels of the example


def test_outside_the_knots_the_end_filters_apply(photo):
    path = AdaptiveFilter(3, 3, 1, 5, bins=3)
    path.solve(photo, photo**2)
    flat = np.full((40, 40, 3), 0.5, np.float32)  # no gradient: below the lowest knot
    weights = path.blend(to_tensor(flat))[0, :, 20, 20]
    np.testing.assert_allclose(weights.numpy(), [1, 0, 0])


def test_an_edge_preserving_denoiser_is_copied_better_than_by_one_filter():
    x, y = denoised("astronaut", 0)
    new_x, new_y = denoised("coffee", 1)  # another photograph, other noise
    one = LinearFilter(3, 3, 1, 7)
    one.solve(x, y)
    adaptive = AdaptiveFilter(3, 3, 1, 7, bins=5)
    adaptive.solve(x, y)
    single = psnr(np.clip(applied(one, new_x), 0, 1), new_y)
    blended = psnr(np.clip(applied(adaptive, new_x), 0, 1), new_y)
    assert blended > single + 1.0, (single, blended)


def test_outputs_in_held_out_blocks_do_not_move_the_filters(photo, rng):
    keep = np.ones(photo.shape[:2], bool)
    keep[40:60, 30:55] = False
    y = np.sqrt(photo)
    other = y.copy()
    other[40:60, 30:55] = rng.random((20, 25, 3))
    paths = [AdaptiveFilter(3, 3, 1, 5, bins=3) for _ in range(2)]
    for path, out in zip(paths, (y, other), strict=True):
        path.solve(photo, out, keep=[keep])
    assert torch.equal(paths[0].bank.weight, paths[1].bank.weight)
    assert torch.equal(paths[0].knots, paths[1].knots)
    changed = AdaptiveFilter(3, 3, 1, 5, bins=3)
    changed.solve(photo, other)  # without the mask the same outputs do move them
    assert not torch.equal(paths[0].bank.weight, changed.bank.weight)


def test_the_receptive_field_covers_the_strengths_reach():
    path = AdaptiveFilter(1, 1, 1, 5, bins=3)
    torch.manual_seed(0)
    torch.nn.init.normal_(path.first.weight, std=0.2)
    torch.nn.init.normal_(path.bank.weight, std=0.2)
    path.knots.copy_(torch.tensor([-6.0, -3.0, -1.0]))
    network = build(replace(TINY_MODEL, linear_kernel=5, linear_bins=3), 1, 1)
    assert network.receptive_field().margin >= path.radius == 2 + 1 + 6
    x = torch.rand(1, 1, 41, 41)
    with torch.no_grad():
        base = path(x)[0, 0, 20, 20]
        for offset, moves in ((path.radius, True), (path.radius + 1, False)):
            poked = x.clone()
            poked[0, 0, 20, 20 + offset] += 1.0
            assert (path(poked)[0, 0, 20, 20] != base).item() is moves, offset


def test_a_fit_with_bins_saves_and_loads_them(tmp_path, photo):
    target = np.sqrt(photo)
    model = replace(TINY_MODEL, linear_bins=4)
    imitator = fit(
        Pair.of(photo, target), model, replace(TINY_FIT, steps=20), tmp_path / "run",
        show_progress=False,
    )  # fmt: skip
    assert isinstance(imitator.network.linear, AdaptiveFilter)
    loaded = Imitator.load(tmp_path / "run", device="cpu")
    assert loaded.model.linear_bins == 4
    assert torch.equal(loaded.network.linear.knots, imitator.network.linear.knots)
    np.testing.assert_array_equal(loaded.apply(photo), imitator.apply(photo))


def test_bad_bins_are_refused_with_the_numbers():
    with pytest.raises(ValueError, match="linear_bins is 0"):
        UNetConfig(linear_bins=0)
    with pytest.raises(ValueError, match="unknowns"):
        build(UNetConfig(linear_kernel=31, linear_bins=4), 3, 3)


def test_the_filters_preset_solves_the_path_and_trains_nothing(tmp_path, photo):
    from onepair.presets import preset

    model, config = preset("filters", 3, 3, 1)
    assert isinstance(model, FilterConfig) and model.linear_bins > 1
    target = np.sqrt(photo)
    imitator = fit(
        Pair.of(photo, target), replace(model, linear_kernel=7), replace(config, seconds=60),
        tmp_path / "run", show_progress=False,
    )  # fmt: skip
    assert imitator.metrics["steps"] == 0
    assert imitator.network.num_params(trainable_only=True) == 0
    assert imitator.metrics["val_psnr"] > imitator.metrics["val_floor_psnr"] + 10
    np.testing.assert_allclose(
        imitator.apply(photo), np.clip(applied(imitator.network.linear, photo), 0, 1), atol=1e-5
    )
    loaded = Imitator.load(tmp_path / "run", device="cpu")
    assert loaded.model == replace(model, linear_kernel=7)
    np.testing.assert_array_equal(loaded.apply(photo), imitator.apply(photo))


def test_runs_saved_before_bins_existed_load_with_one_filter():
    from onepair.models import config_from_dict

    old = {"architecture": "unet", "depth": 2, "width": 8, "skip": "linear", "linear_kernel": 7}
    assert config_from_dict(old).linear_bins == 1
    with pytest.raises(ValueError, match="linear_bins"):
        config_from_dict({**old, "linear_bins": 0})


def test_the_filters_preset_tests_equivariance_for_the_ensemble(photo):
    from onepair.fit import Augment
    from onepair.presets import preset

    model, config = preset("filters", 3, 3, 1)
    pair = Pair.of(photo, np.sqrt(photo))  # per pixel: equivariant to every flip and rotation
    model = replace(model, linear_kernel=7, stage2_kernel=0)  # one stage: all eight pass here
    auto = fit(
        pair, model, replace(config, augment=Augment.AUTO),
        show_progress=False,
    )  # fmt: skip
    assert len(auto.equivariances) == 8 and auto.metrics["steps"] == 0
    plain = fit(pair, model, replace(config, augment=Augment.NONE), show_progress=False)
    assert plain.equivariances == ["identity"]


def test_the_filters_preset_solves_on_the_transforms_it_keeps_when_the_blocks_agree(photo):
    from onepair.fit import Augment
    from onepair.presets import preset

    model, config = preset("filters", 3, 3, 1)
    pair = Pair.of(*denoised("astronaut", 0))  # a TV denoiser commutes with all eight
    model = replace(model, linear_kernel=7, stage2_kernel=0)
    auto = fit(pair, model, config, show_progress=False)  # the preset tests equivariance
    assert config.augment is Augment.AUTO
    plain = fit(pair, model, replace(config, augment=Augment.NONE), show_progress=False)
    tested = fit(pair, model, replace(config, augment=Augment.TEST), show_progress=False)
    assert len(auto.equivariances) == 8 and tested.equivariances == auto.equivariances
    # the path solved on the transforms too scored better on the held-out blocks (a
    # sqrt target does not: its blocks keep the plain solve) and commutes with them
    assert auto.metrics["val_psnr"] > plain.metrics["val_psnr"]
    new = np.ascontiguousarray(photo[:48, :40])
    assert tested.metrics["linear_solved_on"] == ["identity"]  # test: for the ensemble only
    for imitator, commutes in ((auto, True), (plain, False), (tested, False)):
        rotated = np.ascontiguousarray(dihedral.forward(new, "rot90"))
        turned = dihedral.inverse(imitator.apply(rotated), "rot90")
        assert (np.abs(turned - imitator.apply(new)).max() < 1e-4) == commutes


def test_augment_all_solves_a_networks_linear_path_on_every_transform(photo):
    from onepair.fit import Augment

    pair = Pair.of(photo, np.sqrt(photo))
    config = replace(TINY_FIT, steps=1, augment=Augment.ALL)
    path = fit(pair, replace(TINY_MODEL, linear_bins=3), config, show_progress=False)
    path = path.network.linear
    new = np.ascontiguousarray(photo[:48, :40])
    for name in dihedral.TRANSFORMS:
        moved = np.ascontiguousarray(dihedral.forward(new, name))
        np.testing.assert_allclose(
            dihedral.inverse(applied(path, moved), name), applied(path, new), atol=1e-4
        )


def test_a_second_stage_copies_a_linear_target_exactly(photo, rng):
    kernel, bias = rng.normal(0, 0.2, (3, 3, 5, 5)), rng.normal(0, 0.1, 3)
    # borders reflected, as the second stage sees the first's output on the example
    y = filtered(np.pad(photo, ((2, 2), (2, 2), (0, 0)), mode="reflect"), kernel, bias)[2:-2, 2:-2]
    path = CascadeFilter(3, 3, 1, 5, 3, 3, 2)
    path.solve(photo, y)
    assert bool(path.second)  # nothing held out: the second stage is kept
    np.testing.assert_allclose(applied(path, photo), y, atol=1e-3)


def test_the_held_out_blocks_decide_whether_the_second_stage_stays(rng):
    x, y = denoised("astronaut", 0)
    keep = np.ones(x.shape[:2], bool)
    keep[::32, :] = False  # rows of held-out pixels across the example
    keep[:, ::32] = False
    path = CascadeFilter(3, 3, 1, 7, 3, 5, 2)
    path.solve(x, y, keep=[keep])
    held = ~keep
    errors = []
    for second in (False, True):
        path.second.fill_(second)
        errors.append(((np.clip(applied(path, x), 0, 1) - y)[held] ** 2).sum())
    assert errors[1] != errors[0]
    path.solve(x, y, keep=[keep])
    assert bool(path.second) == (errors[1] < errors[0])


def test_the_filters_preset_has_two_stages_and_saves_its_choice(tmp_path, photo):
    from onepair.presets import preset

    model, config = preset("filters", 3, 3, 1)
    assert model.stage2_kernel > 0
    small = replace(model, linear_kernel=5, stage2_kernel=3)
    imitator = fit(Pair.of(photo, np.sqrt(photo)), small, config, tmp_path / "run",
                   show_progress=False)  # fmt: skip
    assert isinstance(imitator.network.linear, CascadeFilter)
    assert imitator.metrics["receptive_field"] == 2 * imitator.network.linear.radius + 1
    loaded = Imitator.load(tmp_path / "run", device="cpu")
    assert bool(loaded.network.linear.second) == bool(imitator.network.linear.second)
    np.testing.assert_array_equal(loaded.apply(photo), imitator.apply(photo))
