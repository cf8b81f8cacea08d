"""The one image convention of onepair, and image file I/O.

Every public function takes and returns images as ``numpy.float32`` arrays of
shape ``(H, W, C)`` -- C is always present, 1 for grayscale -- with values
nominally in [0, 1]. Integer files are scaled by their dtype's maximum on load
(8-bit by 255, 16-bit by 65535) and scaled back, clipped, by :func:`save_image`.
Networks see torch tensors ``(B, C, H, W)``; :func:`to_tensor` and
:func:`from_tensor` are the only two conversions between the worlds.

Formats: PNG (8/16-bit, gray, gray+alpha, RGB, RGBA), JPEG, TIFF (8/16-bit,
float, any channel count) and NPY (float or integer arrays, never pickles).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from onepair.readers import (
    JPEG_SIGNATURE,
    PNG_SIGNATURE,
    TIFF_SIGNATURES,
    ImageError,
    check_png_chunks,
    png_header,
    read_npy,
    read_pillow,
    read_png,
    read_png16,
    read_tiff,
)

PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
SUFFIXES = PNG_SUFFIXES + JPEG_SUFFIXES + TIFF_SUFFIXES + NPY_SUFFIXES


GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], np.float32)  # BT.709, as skimage rgb2gray


def shape_str(image: np.ndarray) -> str:
    """``'512x384x3'`` for an (H, W, C) image: the way error messages name sizes."""
    return "x".join(str(s) for s in image.shape)


def as_image(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Check an array and bring it into the convention: float32 (H, W, C).

    Accepts (H, W) and (H, W, C) arrays of any real dtype. Integer arrays are
    scaled by their dtype's maximum; bool arrays become 0/1. Raises
    :class:`ImageError` for other shapes, empty arrays and NaN/inf values.

    >>> as_image(np.zeros((4, 5), np.uint8)).shape
    (4, 5, 1)
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ImageError(f"{name} has shape {array.shape}; expected (H, W) or (H, W, C)")
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ImageError(f"{name} is empty: shape {array.shape}")
    if array.shape[2] > 64:
        raise ImageError(
            f"{name} has shape {array.shape}: {array.shape[2]} channels looks like a "
            "channels-first array; expected (H, W, C) with C <= 64"
        )
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    elif np.issubdtype(array.dtype, np.floating):
        # float64 beyond float32's range becomes inf, refused below without a warning
        with np.errstate(over="ignore", invalid="ignore"):
            array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise ImageError(f"{name} contains {bad} NaN or infinite values")
    else:
        raise ImageError(f"{name} has dtype {array.dtype}; expected an integer or float array")
    return np.ascontiguousarray(array)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, C) float32 image -> (1, C, H, W) float32 tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


def from_tensor(tensor: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor -> (H, W, C) float32 numpy image (not clipped)."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a batch of one, got {tuple(tensor.shape)}")
        tensor = tensor[0]
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy().transpose(1, 2, 0))


# ----------------------------------------------------------------------------- loading


def load_image(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """Read an image file into the convention (float32, (H, W, C), [0, 1]).

    Raises :class:`ImageError` naming the file for unreadable, corrupt, empty
    or non-finite images, unsupported formats, and images declaring more than
    ``limit`` pixels (default :func:`onepair.readers.max_pixels`), refused before decoding.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageError(
            f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty (0 bytes)")
    try:
        if suffix in PNG_SUFFIXES:
            array = read_png(path, limit)
        elif suffix in JPEG_SUFFIXES:
            array = read_pillow(path, path, limit, "JPEG")
        elif suffix in TIFF_SUFFIXES:
            array = read_tiff(path, path, limit)
        else:
            array = read_npy(path, limit)
    except ImageError:
        raise
    except Exception as error:  # decoders raise many types; report them all the same way
        raise ImageError(f"{path}: cannot read as {suffix[1:].upper()}: {error}") from error
    return as_image(array, name=str(path))


# ----------------------------------------------------------------------------- saving


def save_image(path: str | os.PathLike, image: np.ndarray, bit_depth: int = 8) -> Path:
    """Write an image in the convention to ``path``; the suffix picks the format.

    Values are clipped to [0, 1] and scaled to ``bit_depth`` (8 or 16) for PNG
    and TIFF; JPEG is always 8-bit (quality 95); NPY and ``bit_depth=32`` TIFF
    keep float32 values unclipped. The file is written to a temporary name
    and renamed, so a crash never leaves a half-written image.
    """
    path = Path(path)
    image = as_image(image)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageError(
            f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if bit_depth not in (8, 16, 32):
        raise ValueError(f"bit_depth is {bit_depth}; expected 8, 16 or 32")
    if suffix in JPEG_SUFFIXES and image.shape[2] not in (1, 3):
        raise ImageError(f"{path}: JPEG holds 1 or 3 channels, image has {image.shape[2]}")
    if suffix in PNG_SUFFIXES and image.shape[2] > 4:
        raise ImageError(f"{path}: PNG holds 1-4 channels, image has {image.shape[2]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        _write(tmp, image, suffix, bit_depth)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def quantize(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """Clip to [0, 1] and round to unsigned integers of ``bit_depth`` (8 or 16) bits."""
    dtype = {8: np.uint8, 16: np.uint16}[bit_depth]
    scale = float(np.iinfo(dtype).max)
    return np.round(np.clip(image, 0.0, 1.0) * scale).astype(dtype)


def _write(path: Path, image: np.ndarray, suffix: str, bit_depth: int) -> None:
    if suffix in NPY_SUFFIXES:
        np.save(path, image, allow_pickle=False)
        return
    kind = "tiff" if suffix in TIFF_SUFFIXES else "jpeg" if suffix in JPEG_SUFFIXES else "png"
    if kind == "png" and bit_depth not in (8, 16):
        raise ImageError(f"{path}: PNG is 8- or 16-bit; bit_depth={bit_depth} asked")
    path.write_bytes(encode_image(image, kind, bit_depth))


# ----------------------------------------------------------------------------- in memory


def encode_image(image: np.ndarray, kind: str = "png", bit_depth: int = 16) -> bytes:
    """An image as the bytes of a ``png`` (1-4 channels, 8/16-bit), ``tiff`` (any
    channels; 8/16-bit, or 32-bit float unclipped) or ``jpeg`` (1 or 3 channels,
    8-bit, quality 95) file. Integer formats are clipped to [0, 1] and rounded."""
    image = as_image(image)
    buffer = io.BytesIO()
    if kind == "tiff":
        import tifffile

        data = image if bit_depth == 32 else quantize(image, bit_depth)
        tifffile.imwrite(
            buffer,
            data[:, :, 0] if image.shape[2] == 1 else data,
            photometric="rgb" if image.shape[2] == 3 else "minisblack",
            planarconfig="contig",
        )
    elif kind == "jpeg" or (kind == "png" and bit_depth == 8):
        from PIL import Image

        if image.shape[2] > (3 if kind == "jpeg" else 4) or image.shape[2] == 2 and kind == "jpeg":
            raise ImageError(f"{kind.upper()} cannot hold {image.shape[2]} channels")
        data = quantize(image, 8)
        data = data[:, :, 0] if data.shape[2] == 1 else data
        Image.fromarray(data).save(
            buffer, format=kind.upper(), **({"quality": 95} if kind == "jpeg" else {})
        )
    elif kind == "png" and bit_depth == 16:
        import png  # pypng: Pillow writes 16-bit colour PNGs only as 8-bit

        if image.shape[2] > 4:
            raise ImageError(f"PNG holds 1-4 channels, image has {image.shape[2]}")
        data = quantize(image, 16)
        height, width, planes = data.shape
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes] + ";16"
        png.from_array(data.reshape(height, width * planes), mode).write(buffer)
    else:
        raise ValueError(
            f"cannot encode {kind!r} at {bit_depth} bits; expected png 8/16, tiff 8/16/32 or jpeg 8"
        )
    return buffer.getvalue()


def decode_image(
    data: bytes, name: str = "bytes", limit: int | None = None
) -> tuple[np.ndarray, int]:
    """PNG, TIFF or JPEG bytes -> (image in the convention, bits per sample: 8, 16 or 32).

    The format is recognised by its first bytes. Raises :class:`ImageError`
    saying what arrived when the bytes are not a readable image, or when they
    declare more than ``limit`` pixels (default :func:`onepair.readers.max_pixels`).
    """
    head = bytes(data[:8])
    if head.startswith(PNG_SIGNATURE):
        kind = "PNG"
    elif head[:4] in TIFF_SIGNATURES:
        kind = "TIFF"
    elif head.startswith(JPEG_SIGNATURE):
        kind = "JPEG"
    else:
        what = f"{len(data)} bytes starting {bytes(data[:48])!r}" if data else "empty"
        raise ImageError(f"{name} is not a PNG, TIFF or JPEG image: {what}")
    try:
        if kind == "PNG":
            check_png_chunks(io.BytesIO(data), len(data), name)
        if kind == "PNG" and png_header(bytes(data[:26]), name, limit, len(data)) == 16:
            array = read_png16(bytes(data), name, limit)
        elif kind == "TIFF":
            array = read_tiff(io.BytesIO(data), name, limit)
        else:
            array = read_pillow(io.BytesIO(data), name, limit, kind)
    except ImageError:
        raise
    except Exception as error:  # decoders raise many types; report them all the same way
        raise ImageError(f"{name}: cannot read {len(data)} bytes as {kind}: {error}") from error
    bits = 32 if np.issubdtype(array.dtype, np.floating) else min(8 * array.dtype.itemsize, 16)
    return as_image(array, name), bits


def match_channels(image: np.ndarray, channels: int, name: str = "image") -> np.ndarray:
    """Bring a gray image to ``channels`` by repetition, or RGB to gray by luminance.

    Any other mismatch is an error naming both channel counts.
    """
    have = image.shape[2]
    if have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=2)
    if have in (3, 4) and channels == 1:
        rgb = image[:, :, :3]
        return (rgb @ GRAY_WEIGHTS)[:, :, None]
    if have == 4 and channels == 3:
        return np.ascontiguousarray(image[:, :, :3])
    raise ImageError(f"{name} has {have} channels; expected {channels}")


def file_bit_depth(path: str | os.PathLike) -> int:
    """Bits per sample of an image file: 8, 16, or 32 for float TIFF/NPY."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PNG_SUFFIXES:
        with open(path, "rb") as f:
            return 16 if png_header(f.read(26), path, limit=2**62) == 16 else 8
    if suffix in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            dtype = tif.series[0].dtype
        return 32 if np.issubdtype(dtype, np.floating) else min(8 * dtype.itemsize, 16)
    if suffix in NPY_SUFFIXES:
        return 32
    return 8
