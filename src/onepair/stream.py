"""Streaming apply: a TIFF in, a TIFF out, one band of rows at a time.

Neither image is ever whole in memory. The input is read a band of rows at a
time -- memory-mapped when it is stored uncompressed, otherwise by decoding
only the strips or tiles the band needs -- with the context rows above and
below it that the network's receptive field asks for (reflected at the image
borders, as :func:`onepair.tiling.apply_network` pads). Each band runs through
the same seamless tiling, and its output is written at once as rows of tiles
of a tiled TIFF. Peak memory is two bands of input and output plus one tile's
activations, whatever the image size; the result equals a whole-image pass.
The next band is read and computed in a worker thread while the writer
quantises and compresses the last one.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onepair.images import as_image, quantize
from onepair.models import Network
from onepair.readers import ImageError, TiffLayout, TiffLog, tiff_layout
from onepair.tiling import apply_padded, resolve_precision
from onepair.writer import behind

TIFF_TILE = 256  # side of the output's TIFF tiles (a multiple of 16, as TIFF asks)
JPEG_CODES = {6, 7, 33007, 34892}


class TiffRows:
    """Rows of the first image of a TIFF, read on demand as (rows, W, C) raw samples.

    Uncompressed images are memory-mapped; compressed ones (any codec tifffile
    decodes) are read by decoding only the strips or tiles that hold the rows
    asked for. The file's header is checked as :func:`onepair.images.load_image`
    checks it (size limit, segments inside the file) before anything is read.
    """

    def __init__(self, path: str | os.PathLike, limit: int | None = None):
        import tifffile

        self.path = Path(path)
        try:
            self._tif = tifffile.TiffFile(self.path)
        except (OSError, tifffile.TiffFileError) as error:
            raise ImageError(f"{self.path}: cannot read as TIFF: {error}") from error
        try:
            self.layout: TiffLayout = tiff_layout(self._tif, self.path, limit)
        except Exception:
            self._tif.close()
            raise
        self.height, self.width = self.layout.height, self.layout.width
        self.channels = self.layout.channels
        self.dtype = self.layout.series.dtype
        self.page = self.layout.series.pages[0]
        self._map = None
        if self.page.is_memmappable:
            self._map = self.layout.arrange(tifffile.memmap(self.path, mode="r"))

    def __enter__(self) -> TiffRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._map = None
        self._tif.close()

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order, repeats allowed) as (len(index), W, C)."""
        lo, hi = int(index.min()), int(index.max()) + 1
        if lo < 0 or hi > self.height:
            raise IndexError(f"rows {lo}..{hi - 1} asked of a {self.height}-row image")
        block = self._map[lo:hi] if self._map is not None else self._decode(lo, hi)
        block = np.asarray(block)
        if block.ndim == 2:
            block = block[:, :, None]
        return block[index - lo]

    def _decode(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` decoded from the strips or tiles that hold them."""
        page = self.page
        planes = page.samplesperpixel if page.planarconfig == 2 else 1
        per_plane = len(page.dataoffsets) // planes
        if page.is_tiled:
            band, across = page.tilelength, math.ceil(self.width / page.tilewidth)
        else:
            band, across = page.rowsperstrip, 1
        out = np.zeros((hi - lo, self.width, self.channels), self.dtype)
        kwargs: dict[str, Any] = {}
        if int(page.compression) in JPEG_CODES:
            kwargs = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        handle = self._tif.filehandle
        log, logger = TiffLog(), logging.getLogger("tifffile")
        logger.addHandler(log)
        try:
            for plane in range(planes):
                for row in range(lo // band, (hi - 1) // band + 1):
                    for column in range(across):
                        index = plane * per_plane + row * across + column
                        handle.seek(page.dataoffsets[index])
                        data = handle.read(page.databytecounts[index])
                        segment, where, _ = page.decode(data, index, **kwargs)
                        if segment is None or log.messages:
                            message = log.messages[0] if log.messages else "an empty segment"
                            raise ImageError(f"{self.path}: cannot read as TIFF: {message}")
                        self._place(out, segment[0], where, plane, planes, lo, hi)
        finally:
            logger.removeHandler(log)
        return out

    def _place(
        self,
        out: np.ndarray,
        segment: np.ndarray,
        where: tuple,
        plane: int,
        planes: int,
        lo: int,
        hi: int,
    ) -> None:
        top, left = int(where[2]), int(where[3])
        rows = slice(max(lo, top), min(hi, top + segment.shape[0]))
        width = min(segment.shape[1], self.width - left)
        part = segment[rows.start - top : rows.stop - top, :width]
        channels = slice(plane, plane + 1) if planes > 1 else slice(None)
        out[rows.start - lo : rows.stop - lo, left : left + width, channels] = part


def apply_tiff(
    network: Network,
    source: str | os.PathLike,
    dest: str | os.PathLike,
    tile: int = 512,
    bit_depth: int | None = None,
    clip: bool = True,
    device: torch.device | str = "cpu",
    on_tile: Callable[[int, int], None] | None = None,
    limit: int | None = None,
    compress: bool = False,
    precision: str = "auto",
) -> tuple[tuple[int, int, int], int]:
    """Run ``network`` on the TIFF ``source`` and write a tiled TIFF ``dest``, streaming.

    ``bit_depth`` is 8, 16 or 32 (float, unclipped); ``None`` keeps the input's
    (32 for float inputs). Bands are ``tile`` input rows (rounded to the
    network's down-sampling factor and the output's TIFF tiles). ``dest`` is
    written under a temporary name and renamed, so an interrupted run leaves no
    partial file. ``compress`` stores it zlib-compressed (level 1): smaller, about a
    quarter slower on 2 cores; uncompressed, as :func:`onepair.images.save_image`
    writes, by default. ``precision``: what the network's body computes in
    (:func:`onepair.tiling.resolve_precision`). Returns the output's (height, width,
    channels) and its bit depth.
    """
    compute = resolve_precision(precision, device)
    dest = Path(dest)
    with TiffRows(source, limit) as reader:
        if reader.channels != network.in_channels:
            raise ValueError(
                f"{source} has {reader.channels} channels; this imitator expects "
                f"{network.in_channels}"
            )
        if bit_depth is None:
            floating = np.issubdtype(reader.dtype, np.floating)
            bit_depth = 32 if floating else min(8 * reader.dtype.itemsize, 16)
        if bit_depth not in (8, 16, 32):
            raise ValueError(f"bit_depth is {bit_depth}; expected 8, 16 or 32")
        s, h, w = network.scale, reader.height, reader.width
        shape = (s * h, s * w, network.out_channels)
        band = _band_rows(h, tile, network.multiple, s, network.receptive_field().margin)
        total = math.ceil(h / band)
        dtype = {8: np.uint8, 16: np.uint16, 32: np.float32}[bit_depth]
        bands = _bands(network, reader, band, tile, device, on_tile, total, compute)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}{dest.suffix}")

        def write(outputs: Iterator[np.ndarray]) -> None:
            import tifffile

            tifffile.imwrite(
                tmp,
                (
                    _to_dtype(part, bit_depth, clip)
                    for output in outputs
                    for part in _tiles_of(output, s * band, shape[1])
                ),
                shape=shape,
                dtype=dtype,
                tile=(s * band, TIFF_TILE),
                photometric="rgb" if shape[2] == 3 else "minisblack",
                planarconfig="contig" if shape[2] > 1 else None,
                compression="zlib" if compress else None,
                compressionargs={"level": 1} if compress else None,
                bigtiff=math.prod(shape) * np.dtype(dtype).itemsize > 2**31,
            )

        try:
            behind(write, bands)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return shape, bit_depth


def _band_rows(height: int, tile: int, multiple: int, scale: int, margin: int) -> int:
    """Input rows per band: with their context, at most ``tile`` (one row of tiles per
    band, not two with most of the second spent on overlap); as few bands as that
    allows, of near-equal height (no thin last band); a multiple of the network's
    down-sampling factor; an output band a multiple of 16 rows (TIFF tiles)."""
    step = math.lcm(multiple, 16 // math.gcd(16, scale))
    largest = max(step, (tile - 2 * margin) // step * step)
    count = math.ceil(height / largest)
    return min(largest, math.ceil(math.ceil(height / count) / step) * step)


def _bands(
    network: Network,
    reader: TiffRows,
    band: int,
    tile: int,
    device: torch.device | str,
    on_tile: Callable[[int, int], None] | None,
    total: int,
    compute: torch.dtype = torch.float32,
) -> Iterator[np.ndarray]:
    """The output, a band of ``s * band`` rows at a time, each from its input rows and
    their context (reflected at the borders, as whole-image apply pads); the network's
    body computes in ``compute``."""
    h = reader.height
    margin = network.receptive_field().margin
    padded_rows = np.pad(np.arange(h), margin, mode="reflect") if margin else np.arange(h)
    for number, top in enumerate(range(0, h, band)):
        bottom = min(top + band, h)
        raw = reader.rows(padded_rows[top : bottom + 2 * margin])
        window = as_image(raw, name=str(reader.path))
        if margin:
            window = np.pad(window, ((0, 0), (margin, margin), (0, 0)), mode="reflect")
        out = np.empty(
            (network.scale * (bottom - top), network.scale * reader.width, network.out_channels),
            np.float32,
        )
        apply_padded(network, window, margin, out, tile, device, dtype=compute)
        if on_tile is not None:
            on_tile(number + 1, total)
        yield out


def _tiles_of(band: np.ndarray, rows: int, width: int) -> Iterator[np.ndarray]:
    """A band of output rows cut into its TIFF tiles, left to right (the last band
    and the right-most tiles zero-padded to full size, as TIFF stores them)."""
    for left in range(0, width, TIFF_TILE):
        part = band[:, left : left + TIFF_TILE]
        if part.shape[:2] != (rows, TIFF_TILE):
            full = np.zeros((rows, TIFF_TILE, band.shape[2]), band.dtype)
            full[: part.shape[0], : part.shape[1]] = part
            part = full
        yield part


def _to_dtype(part: np.ndarray, bit_depth: int, clip: bool) -> np.ndarray:
    if bit_depth == 32:
        return np.clip(part, 0.0, 1.0) if clip else part
    return quantize(part, bit_depth)
