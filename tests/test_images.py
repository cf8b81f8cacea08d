"""images.py: the one convention, file round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from onepair.images import (
    ImageError,
    as_image,
    file_bit_depth,
    from_tensor,
    load_image,
    match_channels,
    save_image,
    to_tensor,
)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("bits", [8, 16])
def test_png_round_trip_is_exact_at_its_bit_depth(tmp_path, rng, channels, bits):
    levels = 2**bits - 1
    image = (rng.integers(0, levels + 1, (37, 31, channels)) / levels).astype(np.float32)
    path = save_image(tmp_path / "a.png", image, bit_depth=bits)
    loaded = load_image(path)
    assert loaded.dtype == np.float32 and loaded.shape == (37, 31, channels)
    np.testing.assert_allclose(loaded, image, atol=1e-7)
    assert file_bit_depth(path) == bits


@pytest.mark.parametrize("channels", [1, 3, 5])
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_tiff_round_trip(tmp_path, rng, channels, bits):
    image = rng.random((29, 33, channels)).astype(np.float32)
    loaded = load_image(save_image(tmp_path / "a.tif", image, bit_depth=bits))
    atol = {8: 0.5 / 255, 16: 0.5 / 65535, 32: 0.0}[bits]
    np.testing.assert_allclose(loaded, image, atol=atol + 1e-7)
    assert file_bit_depth(tmp_path / "a.tif") == bits


def test_16bit_tiff_scales_by_65535_and_planar_tiff_is_channels_last(tmp_path):
    data = np.zeros((3, 10, 12), np.uint16)  # planar: (C, H, W)
    data[1, 2, 3] = 65535
    data[2] = 32768
    tifffile.imwrite(tmp_path / "planar.tif", data, photometric="rgb", planarconfig="separate")
    image = load_image(tmp_path / "planar.tif")
    assert image.shape == (10, 12, 3)
    assert image[2, 3, 1] == 1.0 and image[0, 0, 1] == 0.0
    np.testing.assert_allclose(image[..., 2], 32768 / 65535)


def test_jpeg_and_npy(tmp_path, photo):
    jpeg = load_image(save_image(tmp_path / "a.jpg", photo))
    assert jpeg.shape == photo.shape and np.abs(jpeg - photo).mean() < 0.02
    npy = load_image(save_image(tmp_path / "a.npy", photo * 3 - 1))  # float kept unclipped
    np.testing.assert_array_equal(npy, photo * 3 - 1)


def test_conversions_are_inverse_and_shape_aware(photo):
    tensor = to_tensor(photo)
    assert tuple(tensor.shape) == (1, 3, 96, 80)
    np.testing.assert_array_equal(from_tensor(tensor), photo)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 5)), "is empty"),
        (np.zeros((4, 5, 6, 7)), "expected (H, W) or (H, W, C)"),
        (np.zeros(5), "expected (H, W) or (H, W, C)"),
        (np.zeros((128, 64, 100)), "channels looks like a channels-first array"),
        (np.array([[np.nan, 0.0]]), "contains 1 NaN or infinite values"),
        (np.array([[np.inf, 0.0]]), "contains 1 NaN or infinite values"),
        (np.array([["a"]]), "dtype <U1"),
    ],
)
def test_bad_arrays_are_refused_with_what_arrived(array, message):
    with pytest.raises(ImageError, match=re_escape(message)):
        as_image(array)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_bad_files_say_which_file_and_what_is_wrong(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png at all, truncated")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan, np.float32))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    good = save_image(tmp_path / "good.png", np.ones((64, 64, 3), np.float32) / 3).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    cases = {
        "cut.png": "cannot read as PNG",
        "empty.png": "file is empty (0 bytes)",
        "bad.png": "cannot read as PNG",
        "bad.tif": "cannot read as TIFF",
        "bad.jpg": "cannot read as JPG",
        "nan.npy": "contains 16 NaN or infinite values",
        "obj.npy": "cannot read as NPY",
        "x.gif": "unsupported file type '.gif'",
        "missing.png": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(ImageError, match=re_escape(message)) as info:
            load_image(tmp_path / name)
        assert name in str(info.value)


def test_save_refuses_what_the_format_cannot_hold(tmp_path, rng):
    with pytest.raises(ImageError, match="JPEG holds 1 or 3 channels, image has 4"):
        save_image(tmp_path / "a.jpg", rng.random((8, 8, 4)))
    with pytest.raises(ImageError, match="PNG holds 1-4 channels, image has 5"):
        save_image(tmp_path / "a.png", rng.random((8, 8, 5)))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_match_channels():
    gray = np.full((4, 4, 1), 0.5, np.float32)
    assert match_channels(gray, 3).shape == (4, 4, 3)
    rgb = np.ones((4, 4, 3), np.float32)
    np.testing.assert_allclose(match_channels(rgb, 1), 1.0, rtol=1e-6)
    with pytest.raises(ImageError, match="has 3 channels; expected 2"):
        match_channels(rgb, 2)


def test_palette_and_bilevel_pngs_become_rgb_and_gray(tmp_path):
    from PIL import Image

    palette = Image.new("P", (6, 4))
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    palette.save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png")
    assert image.shape == (4, 6, 3) and tuple(image[1, 1]) == (1.0, 0.0, 0.0)
    Image.new("1", (5, 3), 1).save(tmp_path / "b.png")
    bilevel = load_image(tmp_path / "b.png")
    assert bilevel.shape == (3, 5, 1) and bilevel.min() == 1.0


@pytest.mark.parametrize(
    ("kind", "bits", "channels", "tolerance"),
    [
        ("png", 8, 3, 0.5 / 255),
        ("png", 16, 1, 0.5 / 65535),
        ("png", 16, 4, 0.5 / 65535),
        ("tiff", 16, 5, 0.5 / 65535),
        ("tiff", 32, 3, 0.0),
        ("jpeg", 8, 3, None),  # lossy: judged by its mean error
    ],
)
def test_bytes_round_trip(photo, kind, bits, channels, tolerance):
    from onepair.codec import decode_image, encode_image

    image = np.concatenate([photo, photo[..., :2]], axis=2)[..., :channels]
    back, depth = decode_image(encode_image(image, kind, bits))
    assert back.shape == image.shape and depth == bits
    if tolerance is None:
        assert np.abs(back - image).mean() < 0.02
    else:
        assert np.abs(back - image).max() <= tolerance + 1e-7


def test_decode_says_what_arrived():
    from onepair.codec import decode_image, encode_image
    from onepair.images import ImageError

    with pytest.raises(ImageError, match=r"reply is not a PNG, TIFF or JPEG image: 15 bytes"):
        decode_image(b"<html>oops</html>"[:15], "reply")
    with pytest.raises(ImageError, match="cannot read 40 bytes as PNG"):
        decode_image(encode_image(np.zeros((8, 8, 1)), "png", 16)[:40], "reply")
    with pytest.raises(ValueError, match="cannot encode 'gif'"):
        encode_image(np.zeros((8, 8, 1)), "gif", 8)


def _png_declaring(width: int, height: int, bits: int) -> bytes:
    """A real tiny PNG whose header is rewritten to declare ``width x height``."""
    import struct
    import zlib

    from onepair.codec import encode_image

    data = bytearray(encode_image(np.zeros((4, 4, 3)), "png", bits))
    start = 8 + 8  # signature, then IHDR length and type
    data[start : start + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : start + 13]))
    data[start + 13 : start + 17] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("bits", [8, 16])
def test_decompression_bombs_are_refused_before_decoding(tmp_path, bits, monkeypatch):
    from onepair.codec import decode_image

    bomb = _png_declaring(100_000, 100_000, bits)
    assert len(bomb) < 200
    with pytest.raises(ImageError, match=r"declares a 100000x100000 image .* over the limit"):
        decode_image(bomb, "upload")
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(ImageError, match=r"bomb.png: declares a 100000x100000"):
        load_image(tmp_path / "bomb.png")
    monkeypatch.setenv("ONEPAIR_MAX_PIXELS", "15")  # the limit is configurable
    with pytest.raises(ImageError, match="declares a 4x4 image"):
        decode_image(_png_declaring(4, 4, bits))


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".jpg"])
def test_pixel_limit_applies_to_every_format(tmp_path, photo, suffix):
    path = save_image(tmp_path / f"x{suffix}", photo, bit_depth=16 if suffix == ".tif" else 8)
    assert load_image(path, limit=96 * 80).shape == photo.shape
    with pytest.raises(ImageError, match=r"declares a 96x80 image"):
        load_image(path, limit=96 * 80 - 1)
