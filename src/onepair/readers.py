"""Reading image files from strangers: header checks first, then decoding.

Every loader reads the declared size from the file's header and refuses it
before any pixel is decoded when it exceeds :func:`max_pixels`, or when the
file is too small to hold it (a decompression bomb, a forged length): a small
file can never make onepair allocate gigabytes. Used by
:func:`onepair.images.load_image` and :func:`onepair.codec.decode_image`,
which return the convention; these functions return raw arrays.
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class ImageError(ValueError):
    """An image file or array that does not follow onepair's image convention."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
JPEG_SIGNATURE = b"\xff\xd8\xff"

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


def check_size(name: object, height: int, width: int, values: int, limit: int | None) -> None:
    """Refuse a declared size over ``limit`` pixels (or 16 values per pixel) before decoding."""
    limit = max_pixels() if limit is None else limit
    pixels = int(height) * int(width)
    if pixels > limit or values > 16 * limit:
        raise ImageError(
            f"{name}: declares a {height}x{width} image ({values:,} values), over the limit of "
            f"{limit:,} pixels; if it is genuine, raise ONEPAIR_MAX_PIXELS"
        )


def check_stored(name: object, raw: int, stored: int, ratio: int, how: str) -> None:
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


def read_pillow(
    source: Path | io.BytesIO, name: object, limit: int | None, kind: str
) -> np.ndarray:
    """A ``kind`` ("PNG" or "JPEG") image through Pillow, and no other format: Pillow
    would otherwise open a GIF or BMP named .jpg, and check no compression ratio."""
    from PIL import Image

    with Image.open(source, formats=[kind]) as im:
        width, height = im.size
        check_size(name, height, width, height * width * len(im.getbands()), limit)
        if im.format == "JPEG":
            stored = source.stat().st_size if isinstance(source, Path) else len(source.getbuffer())
            check_stored(name, height * width, stored, JPEG_PIXELS_PER_BYTE, "JPEG")
        im.load()
        if im.mode == "1":
            im = im.convert("L")
        elif im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        return np.asarray(im, dtype=np.uint16 if im.mode == "I;16" else None)


def read_npy(path: Path, limit: int | None) -> np.ndarray:
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
        check_size(path, shape[0], shape[1], values, limit)
    check_stored(path, values * dtype.itemsize, path.stat().st_size - start, 1, "NPY")
    return np.load(path, allow_pickle=False)


def png_header(head: bytes, name: object, limit: int | None, stored: int | None = None) -> int:
    """Check a PNG's IHDR (its declared size against ``limit`` and, given the file's
    ``stored`` size, against what DEFLATE can expand that to); return its bit depth."""
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ImageError(f"{name}: cannot read as PNG: bad signature or header")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    planes = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
    check_size(name, height, width, height * width * planes, limit)
    if stored is not None:
        raw = height * (1 + (width * planes * max(depth, 1) + 7) // 8)  # a filter byte per row
        check_stored(name, raw, stored, DEFLATE_RATIO, "PNG")
    return depth


def check_png_chunks(f: io.BufferedIOBase | io.BytesIO, size: int, name: object) -> None:
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


def read_png(path: Path, limit: int | None) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(26)
        check_png_chunks(f, path.stat().st_size, path)
    if png_header(head, path, limit, path.stat().st_size) < 16:
        return read_pillow(path, path, limit, "PNG")
    return read_png16(path.read_bytes(), path, limit)


def read_png16(data: bytes, name: object, limit: int | None) -> np.ndarray:
    import png  # pypng: Pillow reads 16-bit colour PNGs only as 8-bit

    width, height, rows, info = png.Reader(bytes=data).asDirect()  # rows: decoded lazily
    check_size(name, height, width, height * width * info["planes"], limit)
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, info["planes"])


class TiffLog(logging.Handler):
    """Collects what tifffile logs: while decoding pixels it logs, rather than raises,
    for damage it works around (strips it could not read), leaving zeros behind."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check_segments(name: object, series: Any, size: int) -> None:
    """Refuse a TIFF whose strips or tiles are declared to end past the end of the file
    (tifffile would ask for a buffer of the declared size: gigabytes, for a forged count)."""
    for page in series.pages:
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
            if offset + count > size:
                raise ImageError(
                    f"{name}: cannot read as TIFF: a strip or tile of {count:,} bytes at byte "
                    f"{offset:,} ends past the end of the {size:,}-byte file"
                )


def read_tiff(source: Path | io.BytesIO, name: object, limit: int | None) -> np.ndarray:
    """The first series of a TIFF as (H, W) or (H, W, C); refused when tifffile reports
    damage, when the series has more than one page or plane, or when its declared size
    is over ``limit`` or more than its stored bytes can hold."""
    import tifffile

    log, logger = TiffLog(), logging.getLogger("tifffile")
    logger.addHandler(log)
    try:
        with tifffile.TiffFile(source) as tif:
            layout = tiff_layout(tif, name, limit)
            log.messages.clear()  # complaints about tags are tolerated, not about pixel data
            # zeros, not tifffile's uninitialised output: nothing of this process's memory
            # can show through where a damaged file has no data
            series = layout.series
            array = series.asarray(out=np.zeros(series.shape, series.dtype))
            if log.messages:
                raise ImageError(f"{name}: cannot read as TIFF: {log.messages[0]}")
    finally:
        logger.removeHandler(log)
    return layout.arrange(array)


@dataclass(frozen=True)
class TiffLayout:
    """The checked first series of a TIFF and how its axes map to (H, W[, C])."""

    series: Any
    shape: tuple[int, ...]  # the series' shape, axes as tifffile names them
    keep: list[int]  # axes kept (Y, X and channel axes longer than 1)
    order: list[int]  # transpose of the kept axes to (Y, X[, C])

    @property
    def height(self) -> int:
        return self.shape[self.keep[self.order[0]]]

    @property
    def width(self) -> int:
        return self.shape[self.keep[self.order[1]]]

    @property
    def channels(self) -> int:
        return self.shape[self.keep[self.order[2]]] if len(self.order) > 2 else 1

    def arrange(self, array: np.ndarray) -> np.ndarray:
        """An array of the series' shape as (H, W) or (H, W, C) (a view where possible)."""
        array = array.reshape([self.shape[i] for i in self.keep])
        return array.transpose(self.order)


def tiff_layout(tif: Any, name: object, limit: int | None) -> TiffLayout:
    """Check the first series of an open ``tifffile.TiffFile`` before any pixel is decoded:
    one 2-D image with optional channels, a declared size within ``limit``, strips and
    tiles inside the file, and no more pixels than its stored bytes can hold."""
    if not tif.series:
        raise ImageError(f"{name}: cannot read as TIFF: it holds no image")
    series = tif.series[0]
    axes, shape = series.axes, tuple(int(n) for n in series.shape)
    if len(axes) != len(shape):
        raise ImageError(f"{name}: cannot read as TIFF: axes {axes} for shape {shape}")
    sizes = dict(zip(axes, shape, strict=True))
    values = math.prod(shape)
    check_size(name, sizes.get("Y", 1), sizes.get("X", 1), values, limit)
    keep = [i for i, (a, n) in enumerate(zip(axes, shape, strict=True)) if a in "YX" or n > 1]
    kept = "".join(axes[i] for i in keep)
    if sorted(kept.replace("S", "C")) not in (["X", "Y"], ["C", "X", "Y"]):
        raise ImageError(
            f"{name}: TIFF series has shape {shape} (axes {axes}); "
            "expected one 2-D image with optional channels (one page)"
        )
    check_segments(name, series, tif.filehandle.size)
    if series.keyframe.samplesperpixel > 1 and series.keyframe.planarconfig not in (1, 2):
        raise ImageError(
            f"{name}: cannot read as TIFF: PlanarConfiguration is "
            f"{int(series.keyframe.planarconfig)}; expected 1 (contiguous) or 2 (planar)"
        )
    compression = int(series.keyframe.compression)
    ratio = {1: 1, 8: DEFLATE_RATIO, 32946: DEFLATE_RATIO}.get(compression)
    if ratio is not None:
        raw = values * series.dtype.itemsize
        check_stored(name, raw, tif.filehandle.size, ratio, "TIFF")
    order = [kept.index("Y"), kept.index("X")] + [i for i, a in enumerate(kept) if a in "CS"]
    return TiffLayout(series, shape, keep, order)
