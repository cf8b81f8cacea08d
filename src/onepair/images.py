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
import logging
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

PNG_SUFFIXES = (".png",)
JPEG_SUFFIXES = (".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
SUFFIXES = PNG_SUFFIXES + JPEG_SUFFIXES + TIFF_SUFFIXES + NPY_SUFFIXES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
JPEG_SIGNATURE = b"\xff\xd8\xff"


class ImageError(ValueError):
    """An image file or array that does not follow onepair's image convention."""


GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], np.float32)  # BT.709, as skimage rgb2gray
DEFAULT_MAX_PIXELS = 2**28  # 268 Mpx (16384 x 16384); ONEPAIR_MAX_PIXELS overrides it
DEFLATE_RATIO = 1032  # the most DEFLATE (PNG, zlib TIFF) expands one stored byte
JPEG_PIXELS_PER_BYTE = 512  # Huffman JPEG: >= 1 bit per 8x8 block (progressive DC scan)


def max_pixels() -> int:
    """The largest image (H x W) onepair decodes: ``$ONEPAIR_MAX_PIXELS`` or 2**28.

    Sizes are read from the file's header and checked before any pixel is
    decoded, so a small file declaring a huge image (a decompression bomb)
    is refused before it can allocate memory.
    """
    text = os.environ.get("ONEPAIR_MAX_PIXELS", "")
    try:
        return int(float(text)) if text.strip() else DEFAULT_MAX_PIXELS
    except ValueError:
        raise ImageError(f"ONEPAIR_MAX_PIXELS is {text!r}; expected a number of pixels") from None


def _check_size(name: object, height: int, width: int, values: int, limit: int | None) -> None:
    """Refuse a declared size over ``limit`` pixels (or 16 values per pixel) before decoding."""
    limit = max_pixels() if limit is None else limit
    pixels = int(height) * int(width)
    if pixels > limit or values > 16 * limit:
        raise ImageError(
            f"{name}: declares a {height}x{width} image ({values:,} values), over the limit of "
            f"{limit:,} pixels; if it is genuine, raise ONEPAIR_MAX_PIXELS"
        )


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
    ``limit`` pixels (default :func:`max_pixels`), refused before decoding.
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
            array = _read_png(path, limit)
        elif suffix in JPEG_SUFFIXES:
            array = _read_pillow(path, path, limit, "JPEG")
        elif suffix in TIFF_SUFFIXES:
            array = _read_tiff(path, path, limit)
        else:
            array = _read_npy(path, limit)
    except ImageError:
        raise
    except Exception as error:  # decoders raise many types; report them all the same way
        raise ImageError(f"{path}: cannot read as {suffix[1:].upper()}: {error}") from error
    return as_image(array, name=str(path))


def _check_stored(name: object, raw: int, stored: int, ratio: int, how: str) -> None:
    """Refuse a file whose declared pixels need more than ``ratio`` per stored byte.

    Uncompressed data (``ratio`` 1) must all be present; DEFLATE cannot expand one
    byte into more than 1032, nor Huffman-coded JPEG into more than 512 pixels, so
    a few hundred bytes declaring a gigabyte image are a truncated or forged file,
    refused before anything is allocated.
    """
    if raw > ratio * stored + 4096:
        unit = "pixels" if how == "JPEG" else "bytes of pixels"
        raise ImageError(
            f"{name}: declares {raw:,} {unit}, but its {stored:,} bytes of {how} can hold at "
            f"most {ratio:,} per byte; the file is truncated or corrupt"
        )


def _read_pillow(
    source: Path | io.BytesIO, name: object, limit: int | None, kind: str
) -> np.ndarray:
    """A ``kind`` ("PNG" or "JPEG") image through Pillow, and no other format: Pillow
    would otherwise open a GIF or BMP named .jpg, and check no compression ratio."""
    from PIL import Image

    with Image.open(source, formats=[kind]) as im:
        width, height = im.size
        _check_size(name, height, width, height * width * len(im.getbands()), limit)
        if im.format == "JPEG":
            stored = source.stat().st_size if isinstance(source, Path) else len(source.getbuffer())
            _check_stored(name, height * width, stored, JPEG_PIXELS_PER_BYTE, "JPEG")
        im.load()
        if im.mode == "1":
            im = im.convert("L")
        elif im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        return np.asarray(im, dtype=np.uint16 if im.mode == "I;16" else None)


def _read_npy(path: Path, limit: int | None) -> np.ndarray:
    """An .npy array, its header checked first: no object dtype, declared size within
    ``limit`` and all of its bytes present in the file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        start = f.tell()
    if dtype.hasobject:
        raise ImageError(
            f"{path}: cannot read as NPY: it holds Python objects (dtype {dtype}); onepair "
            "reads numeric arrays only and never unpickles"
        )
    if any(n < 0 for n in shape):  # numpy's header parser lets them through
        raise ImageError(f"{path}: cannot read as NPY: its header declares shape {shape}")
    values = math.prod(shape)
    if len(shape) >= 2:
        _check_size(path, shape[0], shape[1], values, limit)
    _check_stored(path, values * dtype.itemsize, path.stat().st_size - start, 1, "NPY")
    return np.load(path, allow_pickle=False)


def _png_header(head: bytes, name: object, limit: int | None, stored: int | None = None) -> int:
    """Check a PNG's IHDR (its declared size against ``limit`` and, given the file's
    ``stored`` size, against what DEFLATE can expand that to); return its bit depth."""
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ImageError(f"{name}: cannot read as PNG: bad signature or header")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    planes = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
    _check_size(name, height, width, height * width * planes, limit)
    if stored is not None:
        raw = height * (1 + (width * planes * max(depth, 1) + 7) // 8)  # a filter byte per row
        _check_stored(name, raw, stored, DEFLATE_RATIO, "PNG")
    return depth


def _check_png_chunks(f: io.BufferedIOBase | io.BytesIO, size: int, name: object) -> None:
    """Refuse a PNG any of whose chunks is declared to end past the end of the file
    (Pillow and pypng read a chunk whole: a forged length asks for gigabytes)."""
    at = 8
    while at + 8 <= size:
        f.seek(at)
        length, kind = struct.unpack(">I4s", f.read(8))
        if at + 8 + length > size:  # its data past the end (a missing CRC is Pillow's to judge)
            raise ImageError(
                f"{name}: cannot read as PNG: its {kind.decode('latin-1')!r} chunk of "
                f"{length:,} bytes at byte {at:,} ends past the end of the {size:,}-byte file"
            )
        if kind == b"IEND":
            return
        at += 12 + length


def _read_png(path: Path, limit: int | None) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(26)
        _check_png_chunks(f, path.stat().st_size, path)
    if _png_header(head, path, limit, path.stat().st_size) < 16:
        return _read_pillow(path, path, limit, "PNG")
    return _read_png16(path.read_bytes(), path, limit)


def _read_png16(data: bytes, name: object, limit: int | None) -> np.ndarray:
    import png  # pypng: Pillow reads 16-bit colour PNGs only as 8-bit

    width, height, rows, info = png.Reader(bytes=data).asDirect()  # rows: decoded lazily
    _check_size(name, height, width, height * width * info["planes"], limit)
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, info["planes"])


class _TiffLog(logging.Handler):
    """Collects what tifffile logs: while decoding pixels it logs, rather than raises,
    for damage it works around (strips it could not read), leaving zeros behind."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_segments(name: object, series: Any, size: int) -> None:
    """Refuse a TIFF whose strips or tiles are declared to end past the end of the file
    (tifffile would ask for a buffer of the declared size: gigabytes, for a forged count)."""
    for page in series.pages:
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
            if offset + count > size:
                raise ImageError(
                    f"{name}: cannot read as TIFF: a strip or tile of {count:,} bytes at byte "
                    f"{offset:,} ends past the end of the {size:,}-byte file"
                )


def _read_tiff(source: Path | io.BytesIO, name: object, limit: int | None) -> np.ndarray:
    """The first series of a TIFF as (H, W) or (H, W, C); refused when tifffile reports
    damage, when the series has more than one page or plane, or when its declared size
    is over ``limit`` or more than its stored bytes can hold."""
    import tifffile

    log, logger = _TiffLog(), logging.getLogger("tifffile")
    logger.addHandler(log)
    try:
        with tifffile.TiffFile(source) as tif:
            if not tif.series:
                raise ImageError(f"{name}: cannot read as TIFF: it holds no image")
            series = tif.series[0]
            axes, shape = series.axes, tuple(int(n) for n in series.shape)
            if len(axes) != len(shape):
                raise ImageError(f"{name}: cannot read as TIFF: axes {axes} for shape {shape}")
            sizes = dict(zip(axes, shape, strict=True))
            values = math.prod(shape)
            _check_size(name, sizes.get("Y", 1), sizes.get("X", 1), values, limit)
            keep = [
                i for i, (a, n) in enumerate(zip(axes, shape, strict=True)) if a in "YX" or n > 1
            ]
            kept = "".join(axes[i] for i in keep)
            if sorted(kept.replace("S", "C")) not in (["X", "Y"], ["C", "X", "Y"]):
                raise ImageError(
                    f"{name}: TIFF series has shape {shape} (axes {axes}); "
                    "expected one 2-D image with optional channels (one page)"
                )
            _check_segments(name, series, tif.filehandle.size)
            if series.keyframe.samplesperpixel > 1 and series.keyframe.planarconfig not in (1, 2):
                raise ImageError(
                    f"{name}: cannot read as TIFF: PlanarConfiguration is "
                    f"{int(series.keyframe.planarconfig)}; expected 1 (contiguous) or 2 (planar)"
                )
            compression = int(series.keyframe.compression)
            ratio = {1: 1, 8: DEFLATE_RATIO, 32946: DEFLATE_RATIO}.get(compression)
            if ratio is not None:
                raw = values * series.dtype.itemsize
                _check_stored(name, raw, tif.filehandle.size, ratio, "TIFF")
            log.messages.clear()  # complaints about tags are tolerated, not about pixel data
            # zeros, not tifffile's uninitialised output: nothing of this process's memory
            # can show through where a damaged file has no data
            array = series.asarray(out=np.zeros(series.shape, series.dtype))
            if log.messages:
                raise ImageError(f"{name}: cannot read as TIFF: {log.messages[0]}")
    finally:
        logger.removeHandler(log)
    array = array.reshape([shape[i] for i in keep])
    order = [kept.index("Y"), kept.index("X")] + [i for i, a in enumerate(kept) if a in "CS"]
    return array.transpose(order)


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
    declare more than ``limit`` pixels (default :func:`max_pixels`).
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
            _check_png_chunks(io.BytesIO(data), len(data), name)
        if kind == "PNG" and _png_header(bytes(data[:26]), name, limit, len(data)) == 16:
            array = _read_png16(bytes(data), name, limit)
        elif kind == "TIFF":
            array = _read_tiff(io.BytesIO(data), name, limit)
        else:
            array = _read_pillow(io.BytesIO(data), name, limit, kind)
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
            return 16 if _png_header(f.read(26), path, limit=2**62) == 16 else 8
    if suffix in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            dtype = tif.series[0].dtype
        return 32 if np.issubdtype(dtype, np.floating) else min(8 * dtype.itemsize, 16)
    if suffix in NPY_SUFFIXES:
        return 32
    return 8
