"""tiling.py: the CARE test -- tiled output equals whole-image output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import randomise_path, whole
from onepair import cpu
from onepair.images import from_tensor, to_tensor
from onepair.models import FilterConfig, PlainConfig, Skip, UNetConfig, build
from onepair.tiling import apply_network, apply_on_device, resolve_precision, tile_side


def randomised(config, cin, cout, scale):
    torch.manual_seed(0)
    network = build(config, cin, cout, scale).eval()
    torch.nn.init.normal_(network.head[0].weight, std=0.3)
    if network.linear is not None:
        randomise_path(network)
    return network


@pytest.mark.parametrize(
    ("config", "cin", "cout", "scale"),
    [
        (UNetConfig(depth=3, width=4, linear_kernel=7), 3, 3, 1),
        (UNetConfig(depth=2, width=4, skip=Skip.NONE), 1, 3, 2),
        (UNetConfig(depth=2, width=4, unshuffle=2, linear_kernel=5), 3, 3, 1),
        (PlainConfig(receptive_field=11, width=4, batchnorm=True), 2, 2, 1),
    ],
)
@pytest.mark.parametrize("size", [(37, 31), (101, 67)])
@pytest.mark.parametrize("tile", [16, 40, 64])
def test_tiled_equals_whole(config, cin, cout, scale, size, tile, rng):
    check_tiles(config, cin, cout, scale, size, tile, rng)


@pytest.mark.parametrize(
    ("config", "cin", "cout", "scale"),
    [
        (UNetConfig(depth=2, width=4, linear_kernel=5, linear_bins=3), 3, 3, 1),
        (FilterConfig(linear_kernel=5, linear_bins=4, stage2_kernel=0), 1, 3, 2),
        (FilterConfig(linear_kernel=5, linear_bins=3, stage2_kernel=3, stage2_bins=2), 3, 3, 1),
        (FilterConfig(linear_kernel=3, linear_bins=2, stage2_kernel=3, stage2_bins=1), 1, 1, 2),
    ],
)
@pytest.mark.parametrize("size", [(37, 31), (101, 67)])
# adaptive paths reach 9-17 pixels each side, and a tile is its window with that margin:
# tiles of 16 to 24 would each keep one pixel, thousands of windows
@pytest.mark.parametrize("tile", [40, 96])
def test_tiled_equals_whole_with_adaptive_paths(config, cin, cout, scale, size, tile, rng):
    check_tiles(config, cin, cout, scale, size, tile, rng)


def check_tiles(config, cin, cout, scale, size, tile, rng):
    network = randomised(config, cin, cout, scale)
    image = rng.random(size + (cin,)).astype(np.float32)
    tiled = apply_network(network, image, tile=tile)
    assert tiled.shape == (size[0] * scale, size[1] * scale, cout)
    np.testing.assert_allclose(tiled, whole(network, image), atol=1e-5, rtol=0)
    np.testing.assert_allclose(apply_network(network, image, tile=None), tiled, atol=1e-5, rtol=0)
    if min(size) > network.receptive_field().margin:  # as a GPU runs it, the image held there
        held = apply_on_device(network, image, tile, torch.device("cpu"))
        np.testing.assert_allclose(held, tiled, atol=1e-5, rtol=0)


def test_bfloat16_runs_the_body_only_and_stays_close_to_float32(rng):
    network = randomised(UNetConfig(depth=2, width=8, linear_kernel=7), 3, 3, 1)
    image = rng.random((70, 58, 3)).astype(np.float32)
    exact = apply_network(network, image, tile=32, precision="float32")
    for held in (False, True):  # tiles from the host, and the image held on the device
        if held:
            halved = apply_on_device(network, image, 32, torch.device("cpu"), dtype=torch.bfloat16)
        else:
            halved = apply_network(network, image, tile=32, precision="bfloat16")
        assert halved.dtype == np.float32
        gap = np.abs(halved - exact)
        body = np.abs(exact - whole_skip(network, image))
        assert 0 < gap.max() < 0.02 * body.max()  # bfloat16's 8 bits, of the body alone

    # with the body silenced the output is the linear path's, to float32's precision:
    # the skip path and the sum never run in bfloat16
    torch.nn.init.zeros_(network.head[0].weight)
    torch.nn.init.zeros_(network.head[0].bias)
    torch.nn.init.normal_(network.linear.weight, std=0.05)
    np.testing.assert_allclose(
        apply_network(network, image, tile=32, precision="bfloat16"),
        apply_network(network, image, tile=32, precision="float32"),
        atol=1e-6,
        rtol=0,
    )


def whole_skip(network, image):
    """The linear path alone on the whole reflect-padded image."""
    margin = network.receptive_field().margin
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    with torch.no_grad():
        y = from_tensor(network.skip(to_tensor(padded)))
    return y[margin : y.shape[0] - margin, margin : y.shape[1] - margin]


@pytest.mark.parametrize("amx, avx512_bf16", [(True, False), (False, True), (True, True)])
def test_auto_precision_is_bfloat16_on_a_cpu_with_bfloat16_units(monkeypatch, amx, avx512_bf16):
    monkeypatch.undo()  # conftest.py's float32 default in tests: the real choice
    monkeypatch.setattr(cpu, "amx_available", lambda: amx)
    monkeypatch.setattr(cpu, "avx512_bf16_available", lambda: avx512_bf16)
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    assert resolve_precision("auto", "cuda") == torch.float32  # not measured faster there
    assert resolve_precision("float32", "cpu") == torch.float32


def test_auto_precision_is_float32_on_a_cpu_without_them(monkeypatch):
    monkeypatch.undo()
    monkeypatch.setattr(cpu, "amx_available", lambda: False)
    monkeypatch.setattr(cpu, "avx512_bf16_available", lambda: False)
    assert resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="precision is 'fp16'; expected one of auto, float32"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize(
    "probe, flag", [("amx_available", "amx_tile"), ("avx512_bf16_available", "avx512_bf16")]
)
def test_the_probes_agree_with_the_cpu_flags(monkeypatch, probe, flag):
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to compare with")
    monkeypatch.undo()  # conftest.py's float32 default in tests: the real probe
    assert getattr(cpu, probe)() is (flag in cpuinfo.read_text().split())


def test_tiny_images_smaller_than_the_receptive_field():
    network = randomised(UNetConfig(depth=3, width=4), 1, 1, 1)
    image = np.random.default_rng(1).random((3, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(
        apply_network(network, image, tile=16), whole(network, image), atol=1e-5
    )


def test_channel_mismatch_is_an_error():
    network = randomised(UNetConfig(depth=2, width=4), 3, 3, 1)
    with pytest.raises(ValueError, match="image has 1 channels; this imitator expects 3"):
        apply_network(network, np.zeros((8, 8, 1), np.float32))


def test_progress_is_reported_once_per_tile():
    network = randomised(UNetConfig(depth=2, width=4), 1, 1, 1)
    calls = []
    image = np.zeros((100, 60, 1), np.float32)
    apply_network(network, image, tile=32, on_tile=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert calls == [(i + 1, total) for i in range(total)] and total > 4
    held = []
    apply_on_device(network, image, 32, torch.device("cpu"), lambda d, t: held.append((d, t)))
    assert held == calls


def test_the_image_stays_on_the_host_off_cuda_and_where_padding_cannot_reflect():
    from onepair.tiling import _fits_on

    network = randomised(UNetConfig(depth=2, width=4), 1, 1, 1)
    margin = network.receptive_field().margin
    image = np.zeros((100, 60, 1), np.float32)
    assert not _fits_on(torch.device("cpu"), network, image, margin, 512)
    tiny = np.zeros((margin, 60, 1), np.float32)
    assert not _fits_on(torch.device("cuda"), network, tiny, margin, 512)  # no CUDA call


@pytest.mark.parametrize("tile", [None, 128])
def test_held_on_the_device_with_the_fft_linear_path(tile, rng, monkeypatch):
    from onepair import tiling

    network = randomised(UNetConfig(), 3, 3, 1)  # the default: 15 x 15 linear path
    image = rng.random((200, 150, 3)).astype(np.float32)  # tiles >= 96 px: the FFT runs
    host = apply_network(network, image, tile=tile)
    held = []
    monkeypatch.setattr(tiling, "_fits_on", lambda *_: True)  # as on a GPU with room
    monkeypatch.setattr(
        tiling,
        "apply_on_device",
        lambda *a, **k: held.append(1) or apply_on_device(*a, **k),
    )
    np.testing.assert_allclose(apply_network(network, image, tile=tile), host, atol=1e-5)
    assert held == [1]


def test_out_of_device_memory_falls_back_to_tiles_from_the_host(rng, monkeypatch):
    from onepair import tiling

    def short_of_memory(*_args, **_kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    network = randomised(UNetConfig(depth=2, width=4), 1, 1, 1)
    image = rng.random((70, 50, 1)).astype(np.float32)
    expected = apply_network(network, image, tile=32)
    monkeypatch.setattr(tiling, "_fits_on", lambda *_: True)
    monkeypatch.setattr(tiling, "apply_on_device", short_of_memory)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)  # no CUDA here
    np.testing.assert_allclose(apply_network(network, image, tile=32), expected, atol=1e-6)


def test_auto_tiles_follow_the_device_and_bad_tiles_are_refused():
    assert tile_side("auto", "cpu") == 512 and tile_side("auto", torch.device("cuda")) == 2048
    assert tile_side(None, "cpu") is None and tile_side(96, "cuda") == 96
    for bad in (0, -5, 2.5, True, "big"):
        with pytest.raises(ValueError, match=f"tile is {bad!r}; expected a side >= 1"):
            tile_side(bad, "cpu")


def test_clipping_in_place_equals_clipping_afterwards(rng):
    network = randomised(UNetConfig(depth=2, width=4, linear_kernel=5), 3, 3, 1)
    torch.nn.init.normal_(network.head[0].weight, std=3.0)  # outputs well outside [0, 1]
    image = rng.random((70, 50, 3)).astype(np.float32)
    raw = apply_network(network, image, tile=32)
    assert raw.min() < 0 and raw.max() > 1
    clipped = apply_network(network, image, tile=32, clip=True)
    np.testing.assert_array_equal(clipped, np.clip(raw, 0, 1))
    held = apply_on_device(network, image, 32, torch.device("cpu"), clip=True)
    np.testing.assert_allclose(held, clipped, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("pinned_input", [False, True])
def test_on_cuda_the_output_is_the_hosts_and_comes_back_page_locked(monkeypatch, pinned_input):
    """The image held on the GPU gives the CPU's tiles' result; the output array lies in
    page-locked memory (tiling.CUDA_PINNED_OUTPUT) and stays intact through later applies,
    whose pinned blocks must not reuse it while it is alive."""
    from onepair import tiling

    monkeypatch.setattr(tiling, "CUDA_PINNED_INPUT", pinned_input)
    network = randomised(UNetConfig(depth=3, width=4, linear_kernel=7), 3, 3, 1)
    images = [np.random.default_rng(i).random((301, 257, 3)).astype(np.float32) for i in (0, 1)]
    on_host = [apply_network(network, image, tile=128) for image in images]
    first = apply_network(network.to("cuda"), images[0], tile=128, device="cuda")
    assert torch.from_numpy(first).is_pinned()
    second = apply_network(network, images[1], tile=128, device="cuda")
    np.testing.assert_allclose(first, on_host[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(second, on_host[1], atol=1e-4, rtol=0)
    clipped = apply_network(network, images[0], device="cuda", clip=True)  # tiles of 2048
    np.testing.assert_allclose(clipped, np.clip(on_host[0], 0, 1), atol=1e-4, rtol=0)
