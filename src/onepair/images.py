"""The one image convention of onepair, and image file I/O.

Every public function takes and returns images as ``numpy.float32`` arrays of
shape ``(H, W, C)`` -- C is always present, 1 for grayscale -- with values
nominally in [0, 1]. Integer files are scaled by their dtype's maximum on load
(8-bit by 255, 16-bit by 65535) and scaled back, clipped, by :func:`save_image`.
Networks see torch tensors ``(B, C, H, W)``; :func:`to_tensor` and
:func:`from_tensor` are the only two conversions between the worlds.

Formats: PNG (8/16-bit, gray, gray+alpha, RGB, RGBA), JPEG, TIFF (8/16-bit,
float, any channel count) and NPY (float or integer arrays, never pickles). Images as
bytes in memory (PNG, TIFF, JPEG) are :mod:`onepair.codec`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from onepair.readers import (
    ImageError,
    png_header,
    read_npy,
    read_pillow,
    read_png,
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
    from onepair.codec import encode_image  # codec builds on this module

    path.write_bytes(encode_image(image, kind, bit_depth))


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
