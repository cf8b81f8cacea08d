"""validation.py: the held-out blocks, what the fit keeps out of training, and their PSNR."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import TINY_FIT
from onepair import dihedral
from onepair.crops import CropSampler
from onepair.fit import FitConfig, fit
from onepair.metrics import psnr
from onepair.models import PlainConfig, Skip, UNetConfig, build
from onepair.models.linear import LinearFilter
from onepair.pairs import Pair
from onepair.tiling import apply_network
from onepair.validation import Holdout, held_out_blocks


@pytest.mark.parametrize("fraction", [0.125, 0.25, 0.05])
def test_blocks_hold_out_about_the_fraction_spread_over_the_example(fraction):
    side, corners = held_out_blocks(512, 384, fraction)
    assert side == 32
    cells = (512 // 32) * (384 // 32)
    assert abs(len(corners) / cells - fraction) < 0.01
    for quarter in ((0, 0), (0, 1), (1, 0), (1, 1)):  # every quarter of the example has some
        assert any((r >= 256) == quarter[0] and (c >= 192) == quarter[1] for r, c in corners)
    if fraction >= 0.125:  # grids of at least 1 / fraction cells: every row and column
        assert {r for r, _ in corners} == set(range(0, 512, 32))
        assert {c for _, c in corners} == set(range(0, 384, 32))
    if fraction <= 0.2:  # few enough never to touch, not even at a corner
        held = set(corners)
        for r, c in held:
            for dr, dc in ((0, 32), (32, -32), (32, 0), (32, 32)):
                assert (r + dr, c + dc) not in held


def test_small_examples_get_smaller_blocks_and_at_least_one():
    side, corners = held_out_blocks(40, 64, 0.125)
    assert side == 5 and corners
    assert all(r + side <= 40 and c + side <= 64 for r, c in corners)
    assert len(held_out_blocks(16, 16, 0.01)[1]) == 1  # 64 cells, 1 in 100: still one
    assert held_out_blocks(64, 64, 0.0)[1] == []
    assert held_out_blocks(512, 512, 0.125, block=64)[0] == 64  # FitConfig.holdout_block
    with pytest.raises(ValueError, match="holdout_block is 0; expected >= 1"):
        FitConfig(holdout_block=0)
    assert held_out_blocks(100, 100, 0.125, multiple=4)[0] == 12  # 100 // 8, down to 4s
    with pytest.raises(ValueError, match="holdout is 0.6; expected a fraction in"):
        held_out_blocks(64, 64, 0.6)
    with pytest.raises(ValueError, match="FitConfig.holdout is 0.75; expected a fraction in"):
        FitConfig(holdout=0.75)


def _plain(seed: int, scale: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    network = build(PlainConfig(receptive_field=7, width=4), 3, 3, scale).eval()
    for p in network.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return network


@pytest.mark.parametrize("transform", ["identity", "rot90", "anti-transpose"])
def test_block_psnr_is_the_whole_image_pass_on_the_held_out_pixels(photo, transform):
    y = np.clip(photo[::-1] * 0.8 + 0.1, 0, 1).copy()
    pair = Pair.of(photo, y)
    network = _plain(0)
    holdout = Holdout(pair, 0.25, network.receptive_field().margin)
    whole = dihedral.inverse(
        apply_network(network, np.ascontiguousarray(dihedral.forward(photo, transform))),
        transform,
    )
    mask = holdout.mask
    expected = psnr(np.clip(whole[mask], 0, 1), y[mask])
    assert holdout(network, torch.device("cpu"), transform) == pytest.approx(expected, abs=1e-4)
    assert holdout.floor == pytest.approx(psnr(photo[mask], y[mask]), abs=1e-6)


@pytest.mark.parametrize("side", [32, 6])  # 6: rounded down to the net's multiple, 4
def test_block_psnr_of_a_unet_is_its_whole_image_pass(photo, side):
    """Windows start on the U-Net's down-sampling grid as a whole-image pass does."""
    torch.manual_seed(0)
    network = build(UNetConfig(depth=3, width=4), 3, 3).eval()  # multiple 4
    for p in network.parameters():
        torch.nn.init.normal_(p, std=0.1)
    y = np.clip(photo[::-1] * 0.8 + 0.1, 0, 1).copy()
    margin = network.receptive_field().margin
    holdout = Holdout(Pair.of(photo, y), 0.25, margin, block=side, multiple=network.multiple)
    assert holdout.side % network.multiple == 0
    whole = apply_network(network, photo, tile=None)
    mask = holdout.mask
    expected = psnr(np.clip(whole[mask], 0, 1), y[mask])
    assert holdout(network, torch.device("cpu")) == pytest.approx(expected, abs=1e-4)


def test_on_large_examples_an_even_subset_of_blocks_is_measured(rng):
    x = rng.random((64, 2048, 1)).astype(np.float32)
    pair = Pair.of(x, np.repeat(np.repeat(x, 2, 0), 2, 1))  # nearest 2x up-scaling
    holdout = Holdout(pair, 0.25, margin=3, max_pixels=3 * 14 * 14)  # 3 windows of 8 + 2*3
    assert holdout.side == 8 and len(holdout.corners) > 3
    assert holdout.truth.shape == (3, 16, 16, 1)  # three blocks of 8, at scale 2
    assert holdout.weight().shape == (128, 4096, 1)
    assert holdout.weight()[..., 0][np.repeat(np.repeat(holdout.mask, 2, 0), 2, 1)].max() == 0
    network = build(
        PlainConfig(receptive_field=3, width=2, skip=Skip.LINEAR, linear_kernel=1), 1, 1, 2
    )
    network.linear.weight.fill_(1.0)  # every output phase copies its input pixel: exact
    assert holdout(network.eval(), torch.device("cpu")) == float("inf")


def test_the_linear_solve_ignores_the_held_out_targets(rng):
    x = rng.random((48, 48, 1)).astype(np.float32)
    y = x.copy()
    keep = np.ones((48, 48), bool)
    keep[10:30, 10:30] = False
    y[~keep] = rng.random(int((~keep).sum()), dtype=np.float32)[:, None]  # not the target's
    solved = LinearFilter(1, 1, 1, 3)
    with torch.no_grad():
        solved.solve(x, y, ridge=0.0, keep=[keep])
    identity = np.zeros((1, 1, 3, 3), np.float32)
    identity[0, 0, 1, 1] = 1
    np.testing.assert_allclose(solved.weight.detach().numpy(), identity, atol=1e-5)


def test_crops_carry_the_weights_of_their_place(photo):
    pair = Pair.of(photo, photo)
    weight = np.ones(photo.shape[:2] + (1,), np.float32)
    weight[:, 40:] = 0
    sampler = CropSampler(pair, 16, weights=[weight])
    x, y, w = sampler.sample(64, torch.Generator().manual_seed(0))
    assert w is not None and w.shape == (64, 1, 16, 16)
    columns = torch.tensor(photo).permute(2, 0, 1)  # each crop's weight follows its columns
    for xi, wi in zip(x, w, strict=True):
        found = [
            c
            for r in range(photo.shape[0] - 15)
            for c in range(photo.shape[1] - 15)
            if torch.equal(columns[:, r : r + 16, c : c + 16], xi)
        ]
        c = found[0]
        assert torch.equal(wi[0], torch.tensor(weight[:16, c : c + 16, 0]))
    with pytest.raises(ValueError, match="expected one channel of the output's"):
        CropSampler(pair, 16, weights=[weight[:10]])


def _trained(pairs: Pair | list[Pair], config) -> dict[str, torch.Tensor]:
    """The network's weights after the last step of a fit (before best-weights selection)."""
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def keep(step: int, _seconds: float, net: torch.nn.Module) -> None:
        seen[step] = {k: v.clone() for k, v in net.state_dict().items()}

    fit(pairs, PlainConfig(receptive_field=5, width=4), config, show_progress=False, watch=keep)
    return seen[config.steps]


@pytest.mark.parametrize("case", ["plain", "augment-all", "scale-2", "two-examples"])
def test_a_fit_learns_nothing_from_the_held_out_targets(photo, case):
    """Examples that differ only on their held-out blocks train the same network;
    a change outside them trains another."""
    config = replace(TINY_FIT, steps=30, val_every=30, holdout=0.25)
    if case == "augment-all":
        config = replace(config, augment="all")
    x = photo[:64, :64].copy()
    y = np.clip(x * 0.7 + 0.2, 0, 1)
    if case == "scale-2":
        y = np.repeat(np.repeat(y, 2, 0), 2, 1)
    scale = Pair.of(x, y).scale
    mask = Holdout(Pair.of(x, y), config.holdout, margin=0).mask
    mask = np.repeat(np.repeat(mask, scale, 0), scale, 1)
    inside, outside = y.copy(), y.copy()
    inside[mask] = 1.0 - inside[mask]
    outside[~mask] = 1.0 - outside[~mask]
    second = Pair.of(photo[16:80, 8:72], np.clip(photo[16:80, 8:72] * 0.7 + 0.2, 0, 1))

    def run(target: np.ndarray) -> dict[str, torch.Tensor]:
        one = Pair.of(x, target)
        return _trained([second, one] if case == "two-examples" else one, config)

    reference = run(y)
    for name, value in run(inside).items():
        torch.testing.assert_close(value, reference[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(run(outside)["head.0.weight"], reference["head.0.weight"])
