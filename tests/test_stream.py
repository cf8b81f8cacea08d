"""stream.py: TIFF in, TIFF out, a band at a time; equal to a whole-image apply."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tifffile

from onepair.images import as_image, load_image, quantize
from onepair.models import UNetConfig
from onepair.readers import ImageError
from onepair.stream import TiffRows, apply_tiff
from onepair.tiling import apply_network
from onepair.writer import behind
from test_tiling import randomised

LAYOUTS = {
    "plain": {},
    "zlib-strips": {"compression": "zlib", "rowsperstrip": 7},
    "tiled": {"compression": "zlib", "tile": (32, 48)},
    "planar": {"compression": "zlib", "planarconfig": "separate", "rowsperstrip": 5},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rows_match_the_whole_image(layout, tmp_path, rng):
    image = (rng.random((83, 61, 3)) * 65535).astype(np.uint16)
    data = image.transpose(2, 0, 1) if layout == "planar" else image
    tifffile.imwrite(tmp_path / "x.tif", data, photometric="rgb", **LAYOUTS[layout])
    index = np.array([3, 2, 1, 0, 1, 2, 40, 41, 82, 81])
    with TiffRows(tmp_path / "x.tif") as reader:
        assert (reader.height, reader.width, reader.channels) == (83, 61, 3)
        np.testing.assert_array_equal(reader.rows(index), image[index])
        with pytest.raises(IndexError, match="83-row image"):
            reader.rows(np.array([80, 83]))


@pytest.mark.parametrize(
    ("config", "cin", "cout", "scale", "dtype"),
    [
        (UNetConfig(depth=3, width=4, linear_kernel=7), 3, 3, 1, np.uint8),
        (UNetConfig(depth=2, width=4, skip="none"), 1, 3, 2, np.uint16),
    ],
)
@pytest.mark.parametrize("layout", ["plain", "tiled"])
def test_streamed_equals_whole_image_apply(config, cin, cout, scale, dtype, layout, tmp_path, rng):
    network = randomised(config, cin, cout, scale)
    raw = (rng.random((150, 97, cin)) * np.iinfo(dtype).max).astype(dtype)
    kwargs = dict(LAYOUTS[layout], photometric="rgb" if cin == 3 else "minisblack")
    tifffile.imwrite(tmp_path / "in.tif", raw if cin == 3 else raw[:, :, 0], **kwargs)
    bands = []
    shape, depth = apply_tiff(
        network,
        tmp_path / "in.tif",
        tmp_path / "out.tif",
        tile=32,
        on_tile=lambda done, total: bands.append((done, total)),
        compress=layout == "tiled",
    )
    with tifffile.TiffFile(tmp_path / "out.tif") as written_file:
        assert int(written_file.pages[0].compression) == (8 if layout == "tiled" else 1)
    assert shape == (150 * scale, 97 * scale, cout) and depth == 8 * np.dtype(dtype).itemsize
    assert bands[-1][0] == bands[-1][1] > 2  # several bands, all reported
    whole = np.clip(apply_network(network, as_image(raw), tile=None), 0, 1)
    written = tifffile.imread(tmp_path / "out.tif")
    assert written.dtype == dtype and written.shape == shape
    bits = 8 * np.dtype(dtype).itemsize
    assert np.abs(written.astype(int) - quantize(whole, bits).astype(int)).max() <= 1
    np.testing.assert_allclose(load_image(tmp_path / "out.tif"), whole, atol=1.5 / 2**bits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]


def test_float_output_and_never_more_than_a_band_read(tmp_path, rng, monkeypatch):
    network = randomised(UNetConfig(depth=3, width=4, linear_kernel=7), 1, 1, 1)
    image = rng.random((200, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", image, compression="zlib", rowsperstrip=16)
    asked = []
    rows = TiffRows.rows
    monkeypatch.setattr(TiffRows, "rows", lambda self, i: asked.append(len(i)) or rows(self, i))
    apply_tiff(network, tmp_path / "in.tif", tmp_path / "out.tif", tile=64, bit_depth=32)
    margin = network.receptive_field().margin
    band = max(asked) - 2 * margin  # a band and its context fit one tile: one row of tiles
    assert max(asked) <= 64 and band % 16 == 0 and len(asked) == -(-200 // band)
    whole = np.clip(apply_network(network, image[:, :, None], tile=None), 0, 1)
    np.testing.assert_allclose(load_image(tmp_path / "out.tif"), whole, atol=1e-5)


def test_writer_thread_hands_over_errors_and_stops_with_its_producer():
    def failing_writer(items):
        next(items)
        raise OSError("disk full")

    made = []
    with pytest.raises(OSError, match="disk full"):
        behind(failing_writer, (made.append(n) or n for n in range(100)))
    assert len(made) <= 3  # the producer stopped soon after

    def failing_items():
        yield 1
        raise KeyboardInterrupt

    received = []
    with pytest.raises(KeyboardInterrupt):
        behind(lambda items: received.extend(items), failing_items())
    assert received == [1]
    assert not [t for t in threading.enumerate() if t.name == "onepair-stream"]


def test_interrupted_run_leaves_no_file(tmp_path, rng):
    network = randomised(UNetConfig(depth=2, width=4), 3, 3, 1)
    tifffile.imwrite(tmp_path / "in.tif", (rng.random((100, 50, 3)) * 255).astype(np.uint8))

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply_tiff(network, tmp_path / "in.tif", tmp_path / "out.tif", tile=16, on_tile=stop)
    assert [p.name for p in tmp_path.iterdir()] == ["in.tif"]


def test_bad_inputs_say_what_arrived(tmp_path, rng):
    network = randomised(UNetConfig(depth=2, width=4), 3, 3, 1)
    tifffile.imwrite(tmp_path / "gray.tif", (rng.random((40, 40)) * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="gray.tif has 1 channels; this imitator expects 3"):
        apply_tiff(network, tmp_path / "gray.tif", tmp_path / "out.tif")
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageError, match="over the limit of 1,000 pixels"):
        apply_tiff(network, tmp_path / "big.tif", tmp_path / "out.tif", limit=1000)
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="bit_depth is 12; expected 8, 16 or 32"):
        apply_tiff(network, tmp_path / "rgb.tif", tmp_path / "out.tif", bit_depth=12)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + bytes(20))
    with pytest.raises(ImageError, match="broken.tif: cannot read as TIFF"):
        apply_tiff(network, tmp_path / "broken.tif", tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()
