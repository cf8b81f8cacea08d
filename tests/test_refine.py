"""The refiner of ``--preset refined``: a CNN shared across colour channels on the path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import TINY_FIT, randomise_path, whole
from onepair.fit import Augment, fit
from onepair.images import from_tensor, to_tensor
from onepair.imitator import Imitator
from onepair.models import FilterConfig, build
from onepair.pairs import Pair
from onepair.samples import sample
from onepair.tiling import apply_network, run_network

SMALL = FilterConfig(
    linear_kernel=5, linear_bins=3, stage2_kernel=3, stage2_bins=2, refine_layers=2, refine_width=8
)


def randomised(config, channels, scale):
    torch.manual_seed(0)
    network = build(config, channels, channels, scale).eval()
    for parameter in network.refiner.parameters():  # the last layer starts at zero
        torch.nn.init.normal_(parameter, std=0.2)
    return network


def shrunk(seed=0, size=96):
    """A noisy crop and a per-pixel nonlinear denoiser's output: soft thresholding of
    what a box blur leaves, with colours coupled only through their mean."""
    clean = sample("astronaut", 256)[64 : 64 + size, 80 : 80 + size]
    noisy = clean + np.random.default_rng(seed).normal(0, 0.08, clean.shape)
    noisy = np.clip(noisy, 0, 1).astype(np.float32)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None]
    blur = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    rest = x - blur
    out = blur + torch.sign(rest) * (rest.abs() - 0.06).clamp_min(0)
    return noisy, out[0].permute(1, 2, 0).numpy().astype(np.float32)


def test_an_untrained_refiner_adds_nothing_to_the_path(photo):
    network = build(SMALL, 3, 3, 1).eval()
    x = to_tensor(photo)
    with torch.no_grad():
        assert torch.equal(network(x), network.linear(x))


@pytest.mark.parametrize("scale", [1, 2])
def test_the_refiner_treats_every_colour_channel_alike(photo, scale):
    # shared weights and a channel-symmetric summary: permuting the input's channels
    # permutes the correction's, for any weights (a linear path that commutes with the
    # permutation stands in for one solved on a target that does)
    network = randomised(SMALL, 3, scale)
    x = to_tensor(photo)
    order = [2, 0, 1]
    with torch.no_grad():
        path = torch.nn.functional.interpolate(x, scale_factor=scale) * 0.9 if scale > 1 else x**2
        swapped = path[:, order]
        correction = network.residual(network.body_input(x, path))
        moved = network.residual(network.body_input(x[:, order], swapped))
    assert correction.abs().max() > 0.05
    torch.testing.assert_close(moved, correction[:, order], atol=1e-5, rtol=0)


def test_channels_that_differ_get_the_path_alone():
    network = build(SMALL, 1, 3, 1)
    assert network.refiner is None and not network.sees_skip
    assert network.num_params(trainable_only=True) == 0


def test_without_refined_stage2_the_refiner_takes_the_second_stage_s_place():
    from onepair.models.cascade import CascadeFilter

    light = replace(SMALL, refined_stage2=False)
    refined, unrefined = build(light, 3, 3, 1), build(light, 1, 3, 1)
    assert refined.refiner is not None and not isinstance(refined.linear, CascadeFilter)
    # where channels differ there is no refiner, and the second stage stays
    assert unrefined.refiner is None and isinstance(unrefined.linear, CascadeFilter)
    two_stages = build(SMALL, 3, 3, 1)
    assert isinstance(two_stages.linear, CascadeFilter)  # kept beside one by default
    # the receptive field: the first stage's, then the refiner's 3 x 3 layers
    assert refined.body_span.size == 2 * refined.linear.radius + 1 + 2 * SMALL.refine_layers
    assert refined.linear.radius < two_stages.linear.radius


def test_refined_bins_blend_fewer_filters_only_under_a_refiner():
    def first_stage_bins(network) -> int:
        return getattr(network.linear, "stage1", network.linear).bins

    fewer = replace(SMALL, refined_bins=2)
    assert first_stage_bins(build(fewer, 3, 3, 1)) == 2  # refined: two blended filters
    assert first_stage_bins(build(fewer, 1, 3, 1)) == SMALL.linear_bins  # no refiner
    assert first_stage_bins(build(SMALL, 3, 3, 1)) == SMALL.linear_bins  # 0: linear_bins
    with pytest.raises(ValueError, match="refined_bins is -1"):
        replace(SMALL, refined_bins=-1)


def test_the_light_preset_refines_a_one_stage_path_and_keeps_two_stages_without_one():
    from onepair.models.cascade import CascadeFilter
    from onepair.presets import preset

    model, config = preset("refined-light", 3, 3, 1)
    network = build(model, 3, 3, 1)
    assert network.refiner is not None and config.augment is Augment.AUTO
    assert not isinstance(network.linear, CascadeFilter)
    assert network.num_params(trainable_only=True) == sum(
        p.numel() for p in network.refiner.parameters()
    )
    stain, _ = preset("refined-light", 1, 3, 1)  # virtual staining: the two-stage path alone
    staining = build(stain, 1, 3, 1)
    assert isinstance(staining.linear, CascadeFilter)
    assert staining.num_params(trainable_only=True) == 0


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("tile", [72, 128])
def test_tiled_equals_whole_with_a_refiner(scale, tile, rng):
    network = randomised(SMALL, 3, scale)
    randomise_path(network)
    image = rng.random((101, 67, 3)).astype(np.float32)
    tiled = apply_network(network, image, tile=tile, precision="float32")
    np.testing.assert_allclose(tiled, whole(network, image), atol=2e-5)


def test_the_refined_preset_corrects_the_path_on_new_images(tmp_path):
    from onepair.presets import preset

    model, config = preset("refined", 3, 3, 1)
    assert model.refine_layers > 0 and config.augment is Augment.AUTO
    model = replace(model, linear_kernel=7, stage2_kernel=0, refine_width=16)
    config = replace(TINY_FIT, steps=300, crop=48, augment=Augment.AUTO)
    imitator = fit(Pair.of(*shrunk(0)), model, config, tmp_path / "run", show_progress=False)
    history = [r["val_psnr"] for r in imitator.history if "val_psnr" in r]
    assert imitator.metrics["steps"] == 300
    assert imitator.metrics["val_psnr"] > history[0] + 1.0  # the path alone is step 0
    # on an image it never saw, the refined copy beats its own path by a margin
    x, y = shrunk(1)
    x, y = np.ascontiguousarray(x[::-1]), np.ascontiguousarray(y[::-1])
    net = imitator.network
    with torch.no_grad():
        path = from_tensor(net.skip_image(to_tensor(x)))
    err_path = np.mean((np.clip(path, 0, 1) - y) ** 2)
    err = np.mean((imitator.apply(x) - y) ** 2)
    assert 10 * np.log10(err_path / err) > 1.0
    loaded = Imitator.load(tmp_path / "run", device="cpu")
    assert loaded.model == model
    np.testing.assert_array_equal(loaded.apply(x), imitator.apply(x))


def test_the_path_is_solved_on_its_transforms_before_the_refiner_trains(photo):
    pair = Pair.of(*shrunk(0))  # per pixel after a box blur: commutes with all eight
    model = replace(SMALL, linear_kernel=7, stage2_kernel=0)
    base = replace(TINY_FIT, steps=20, crop=32)
    auto = fit(pair, model, replace(base, augment=Augment.AUTO), show_progress=False)
    tested = fit(pair, model, replace(base, augment=Augment.TEST), show_progress=False)
    plain = fit(pair, model, replace(base, augment=Augment.NONE), show_progress=False)
    assert len(auto.equivariances) == 8 and tested.equivariances == auto.equivariances
    assert tested.metrics["linear_solved_on"] == ["identity"]
    # test mode trains the refiner exactly as none does: on the example alone
    both = tested.network.refiner.parameters(), plain.network.refiner.parameters()
    for a, b in zip(*both, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # the path solved on the transforms scored higher on the blocks, so it is kept, and
    # the path alone then commutes with them
    assert auto.metrics["linear_solved_on"] == auto.equivariances
    new = to_tensor(np.ascontiguousarray(photo[:48, :40]))
    with torch.no_grad():
        turned = torch.rot90(auto.network.skip_image(torch.rot90(new, 1, (2, 3))), -1, (2, 3))
        torch.testing.assert_close(turned, auto.network.skip_image(new), atol=1e-4, rtol=0)


def test_bfloat16_runs_the_refiner_beside_a_float32_path(photo):
    network = randomised(SMALL, 3, 1)
    x = to_tensor(photo)
    with torch.no_grad():
        exact = run_network(network, x, torch.float32)
        low = run_network(network, x, torch.bfloat16)
    assert low.dtype == torch.float32
    assert (low - exact).abs().max() < 0.05 and not torch.equal(low, exact)


@pytest.mark.parametrize("height", [16, 33, 70])
def test_the_refiner_in_bands_equals_the_refiner_whole(height, monkeypatch):
    from onepair.models import refine

    torch.manual_seed(0)
    refiner = refine.ChannelRefiner(3, 1, 4, 8).eval()
    for parameter in refiner.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    z = torch.rand(2, 3, height, 40)
    whole_out = refiner.body(z).detach()  # with gradients: one pass over all rows
    monkeypatch.setattr(refine, "BAND_BYTES", 1)  # bands of MIN_BAND_ROWS rows
    calls = []
    refiner.body.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        banded = refiner.run_body(z)
    assert len(calls) == -(-height // refine.MIN_BAND_ROWS)
    torch.testing.assert_close(banded, whole_out, atol=1e-6, rtol=1e-6)
