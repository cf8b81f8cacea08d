"""Images as the bytes of a file, in memory: :func:`encode_image` and :func:`decode_image`.

The HTTP target and the HTTP server exchange images this way, and
:func:`onepair.images.save_image` writes the bytes :func:`encode_image` makes.
Both ends keep the image convention of :mod:`onepair.images`.
"""

from __future__ import annotations

import io

import numpy as np

from onepair.images import as_image, quantize
from onepair.readers import (
    JPEG_SIGNATURE,
    PNG_SIGNATURE,
    TIFF_SIGNATURES,
    ImageError,
    check_png_chunks,
    png_header,
    read_pillow,
    read_png16,
    read_tiff,
)


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
