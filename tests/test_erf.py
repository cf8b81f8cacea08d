"""Effective receptive field: radius arithmetic, black-box and gradient forms, heat map, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn
from typer.testing import CliRunner

import onepair.cli_science  # noqa: F401  (registers `onepair erf` and `onepair theorem`)
from onepair.cli import app
from onepair.erf import DELTA, black_box_erf, erf_radius, gradient_erf
from onepair.erf_figure import save_heatmap, write_erf
from onepair.images import from_tensor, to_tensor
from onepair.imitator import Imitator
from onepair.models import Skip, UNetConfig, build
from onepair.targets import load_target

runner = CliRunner()
GAUSS_95 = math.sqrt(-2 * math.log(0.05))  # 95% of a 2-D Gaussian lies within 2.448 sigma


# ----------------------------------------------------------------------------- erf_radius


def test_radius_of_known_maps():
    impulse = np.zeros((9, 11))
    impulse[4, 5] = 1.0
    assert erf_radius(impulse) == 0.0
    box = np.zeros((9, 11))
    box[3:6, 4:7] = 1.0
    assert erf_radius(box) == pytest.approx(math.sqrt(2))  # corners at sqrt(2) hold 4/9
    assert erf_radius(box, mass=0.5) == 1.0  # the centre plus its 4 neighbours hold 5/9
    assert erf_radius(np.zeros((5, 5))) == 0.0


def test_radius_at_output_resolution_is_in_input_pixels():
    # a x2 map of a 7x7 input: the probed pixel (3, 3) covers output pixels 6..7
    block = np.zeros((14, 14))
    block[6:8, 6:8] = 1.0
    assert erf_radius(block, scale=2) == pytest.approx(math.sqrt(2) / 4)
    ring = np.zeros((14, 14))
    ring[4:10, 4:10] = 1.0  # the 2x2 block and a band of 2 output pixels (1 input pixel) around
    assert erf_radius(ring, scale=2, mass=1.0) == pytest.approx(math.hypot(2.5, 2.5) / 2)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"map": -np.ones((5, 5))}, "negative"),
        ({"map": np.ones(5)}, "expected a non-empty (H, W)"),
        ({"map": np.ones((5, 5)), "scale": 2}, "not a multiple of 2"),
        ({"map": np.ones((4, 4)), "scale": 0}, "scale is 0; expected an integer >= 1"),
        ({"map": np.ones((5, 5)), "mass": 1.5}, "mass is 1.5; expected a fraction in (0, 1]"),
    ],
)
def test_radius_refuses_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        erf_radius(**kwargs)
    assert words in str(info.value)


# ----------------------------------------------------------------------------- black box


def test_identity_has_radius_zero_and_counts_queries():
    result = black_box_erf(lambda x: x, size=33, count=3)
    expected = np.zeros((33, 33))
    expected[16, 16] = DELTA
    np.testing.assert_allclose(result.map, expected, atol=1e-6)
    assert result.radius == 0.0
    assert (result.queries, result.images, result.scale) == (6, 3, 1)


def test_gaussian_blur_map_is_its_kernel():
    result = black_box_erf(load_target("gaussian-blur:sigma=2"), size=41, count=2)
    impulse = np.zeros((41, 41))
    impulse[20, 20] = 1.0
    kernel = gaussian_filter(impulse, 2.0, truncate=4.0)
    np.testing.assert_allclose(result.map / result.map.sum(), kernel, atol=1e-6)


def test_radius_grows_with_sigma_as_a_gaussian_predicts():
    radii = {}
    for sigma in (1, 2, 4):
        result = black_box_erf(load_target(f"gaussian-blur:sigma={sigma}"), size=65, count=1)
        radii[sigma] = result.radius
    assert radii[1] < radii[2] < radii[4]
    for sigma in (2, 4):
        assert radii[sigma] == pytest.approx(GAUSS_95 * sigma, rel=0.15)


def test_upscaling_target_maps_at_output_resolution():
    pytest.importorskip("cv2")
    flat = [np.full((37, 37, 1), 0.5, np.float32)]  # mid-grey: no clipping anywhere
    result = black_box_erf(
        load_target("bicubic-up:factor=2"), images=flat, size=None, count=2, sigma=10
    )
    assert result.map.shape == (74, 74) and result.scale == 2
    # symmetric about the probed pixel's centre 2*18 + 0.5 = 36.5 in output pixels
    np.testing.assert_allclose(result.map, result.map[::-1, ::-1], atol=1e-6)
    rows = np.nonzero(result.map.max(axis=1) > 1e-7)[0]
    # input pixel 18 sits at 18.25..18.75 of the output grid / 2; bicubic taps reach 2 pixels
    assert (rows.min(), rows.max()) == (33, 40)
    # reference: output-pixel distances from (36.5, 36.5), sorted, until 95% of the mass
    r, c = np.indices(result.map.shape)
    d = np.hypot(r - 36.5, c - 36.5).ravel()
    order = np.argsort(d, kind="stable")
    inside = np.cumsum(result.map.ravel()[order])
    first = np.argmax(inside >= 0.95 * inside[-1])
    assert result.radius == pytest.approx(d[order][first] / 2)
    assert 0.5 < result.radius < 2.0


def test_channels_fall_back_to_gray():
    def gray_only(x):
        if x.shape[2] != 1:
            raise ValueError(f"expected 1 channel, got {x.shape[2]}")
        return x

    result = black_box_erf(gray_only, size=21, count=2)
    assert result.radius == 0.0
    assert result.queries == 5  # one refused probe with 3 channels, then 2 per image


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"size": 2}, "size is 2; expected an integer >= 3"),
        ({"count": 0}, "count is 0; expected an integer >= 1"),
        ({"mass": 0.0}, "mass is 0.0; expected a fraction in (0, 1]"),
        ({"delta": 0.0}, "delta is 0.0; expected a change in (0, 1]"),
        ({"sigma": -1.0}, "sigma is -1.0; expected a noise level >= 0"),
        ({"images": [np.zeros((10, 10, 1))], "size": 20}, "is 10x10; cannot crop 20x20"),
        ({"images": np.zeros((10, 10, 1))}, "one array of shape (10, 10, 1); expected a list"),
        ({"images": [np.zeros((9, 9)), np.zeros((8, 9))], "size": None}, "share one height"),
        ({"channels": 0}, "channels is 0; expected an integer >= 1"),
    ],
)
def test_black_box_refuses_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        black_box_erf(lambda x: x, **kwargs)
    assert words in str(info.value)


# ----------------------------------------------------------------------------- gradient


def _linear_net(symmetric: bool) -> nn.Module:
    torch.manual_seed(0)
    if symmetric:
        conv = nn.Conv2d(1, 1, 5, padding=2).double()
        with torch.no_grad():
            w = conv.weight
            w.copy_(w + w.flip(-1, -2))
        return conv
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 1, 5, padding=2)).double()


def _as_black_box(net: nn.Module):
    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return from_tensor(net(to_tensor(x).double()))

    return run


def test_gradient_and_black_box_forms_are_transposes():
    net = _linear_net(symmetric=False)
    grad = gradient_erf(net, size=33, count=2)
    box = black_box_erf(_as_black_box(net), size=33, count=2, channels=1)
    scale = grad.map.max()
    assert grad.scale == 1 and grad.method == "gradient" and grad.queries == 2
    # black box at offset o = delta |k(o)|; gradient at offset o = |k(-o)|
    np.testing.assert_allclose(box.map / DELTA, grad.map[::-1, ::-1], atol=1e-5 * scale)
    assert np.abs(box.map / DELTA - grad.map).max() > 0.05 * scale  # not symmetric here
    sym = _linear_net(symmetric=True)
    grad = gradient_erf(sym, size=33, count=2)
    box = black_box_erf(_as_black_box(sym), size=33, count=2, channels=1)
    np.testing.assert_allclose(box.map / DELTA, grad.map, atol=1e-5 * grad.map.max())
    assert box.radius == grad.radius


def _offsets(erf_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(erf_map > 0)
    return rows - erf_map.shape[0] // 2, cols - erf_map.shape[1] // 2


def test_imitator_erf_lies_inside_its_receptive_field():
    torch.manual_seed(1)
    network = build(UNetConfig(depth=2, width=8, skip=Skip.NONE), 1, 1)
    imitator = Imitator(network)
    span = network.receptive_field()
    was_training = network.train().training
    grad = gradient_erf(imitator, size=41, count=2)
    assert network.training == was_training  # mode restored
    dy, dx = _offsets(grad.map)
    assert (
        span.lo <= dy.min() and dy.max() <= span.hi and span.lo <= dx.min() <= dx.max() <= span.hi
    )
    assert np.abs(dy).max() >= 2  # the field really spreads
    # the black-box form sees the transpose: input c reaches outputs c - hi .. c - lo
    network.eval()
    box = black_box_erf(imitator, size=41, count=2, sigma=5)
    dy, dx = _offsets(box.map)
    assert -span.hi <= dy.min() and dy.max() <= -span.lo
    assert 0 < grad.radius <= span.margin * math.sqrt(2)


def test_gradient_refuses_a_non_network():
    with pytest.raises(TypeError, match="needs a torch nn.Module or an Imitator; got function"):
        gradient_erf(lambda x: x)


# ----------------------------------------------------------------------------- heat map, CLI


def test_heatmap_png_has_log_colours(tmp_path):
    from PIL import Image

    result = black_box_erf(load_target("gaussian-blur:sigma=1.5"), size=33, count=1)
    path = save_heatmap(result, tmp_path / "erf.png", title="blur")
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int).reshape(-1, 3)

    def has(colour):
        return (np.abs(pixels - colour).max(axis=1) <= 6).any()

    assert has((68, 1, 84)) and has((253, 231, 37))  # viridis bottom and top both shown
    assert has((255, 0, 0))  # the radius circle


def test_write_erf_files_agree(tmp_path):
    result = black_box_erf(lambda x: x, size=21, count=1)
    write_erf(result, tmp_path, {"target": "identity"})
    record = json.loads((tmp_path / "erf.json").read_text())
    assert record["target"] == "identity" and record["radius"] == 0.0
    np.testing.assert_array_equal(np.load(tmp_path / "erf.npy"), result.map)
    assert (tmp_path / "erf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_erf_of_a_spec_and_a_run_folder(tmp_path):
    args = ["--size", "33", "--count", "2"]
    result = runner.invoke(app, ["erf", "gaussian-blur:sigma=2", "-o", str(tmp_path / "a"), *args])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "a" / "erf.json").read_text())
    assert record["method"] == "black-box" and record["target"] == "gaussian-blur:sigma=2"
    assert f"{record['radius']:.2f} input pixels" in result.output
    assert record["radius"] == erf_radius(np.load(tmp_path / "a" / "erf.npy"))
    torch.manual_seed(0)
    Imitator(build(UNetConfig(depth=2, width=8, skip=Skip.NONE), 1, 1)).save(tmp_path / "run")
    result = runner.invoke(app, ["erf", str(tmp_path / "run"), "-o", str(tmp_path / "b"), *args])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "erf.json").read_text())["method"] == "gradient"
    run = f"run:{tmp_path / 'run'}"
    result = runner.invoke(app, ["erf", run, "--black-box", "-o", str(tmp_path / "c"), *args])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c" / "erf.json").read_text())["method"] == "black-box"


def test_cli_erf_errors(tmp_path):
    result = runner.invoke(app, ["erf", "no-such-model:sigma=2", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown target 'no-such-model'" in result.output
    result = runner.invoke(app, ["erf", "gaussian-blur", "--gradient", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--gradient needs an imitator run folder" in result.output
    result = runner.invoke(app, ["erf", "identity", "--count", "0", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "count is 0" in result.output
