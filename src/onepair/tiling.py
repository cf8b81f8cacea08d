"""Seamless tiled inference with memory bounded by the tile size.

The image is reflect-padded by the network's receptive-field margin, cut into
tiles whose origins are aligned to the network's down-sampling factor and
that overlap by at least the margin (rounded up to that factor), and only
each tile's centre is kept. Every kept pixel then sees exactly the context it
sees in a whole-image pass, so tiled output equals whole-image output (the
CARE test, tests/test_tiling.py), for any image and tile size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from onepair import cpu
from onepair.images import as_image, from_tensor
from onepair.models import Network

# Tile sides are rounded up to a multiple of this (and of the down-sampling factor):
# oneDNN's convolutions run 2-2.5x slower on some other widths, e.g. 358 or 362 (whose
# half is prime) against 360 (docs/PERFORMANCE.md).
TILE_ALIGN = 16
# Float32 values per pixel of a tile that a network's forward pass may hold at once
# (its activations, the linear path's FFT buffers): a generous figure, for the check
# that an image fits on a GPU (``_fits_on``).
TILE_FLOATS = 128
# The tile side when ``tile="auto"``: 512 suits the CPU; on a GPU, whose per-tile
# overhead dominates small tiles, 2048 applied a 1024 x 1024 image 2.4x and an
# 8192 x 8192 one 1.7x faster (H200, docs/PERFORMANCE.md).
TILE_CPU = 512
TILE_CUDA = 2048
# On CUDA (docs/PERFORMANCE.md, "On a GPU"): the output comes back into page-locked
# host memory, which the GPU writes at full speed, and is returned in place (torch's
# pinned-memory cache reuses the block for the next apply of that size), and the input
# goes over through page-locked memory. On an H200 an 8192 x 8192 output took 579 ms
# into a fresh pageable array and 15 ms into page-locked memory; the apply ran at 203
# megapixels/s with both switches, 166 with the output's alone, 68 with neither.
CUDA_PINNED_OUTPUT = True
CUDA_PINNED_INPUT = True
# What apply computes in: ``"auto"`` is bfloat16 for the network's body on a CPU with
# AMX tiles or AVX-512 bfloat16, float32 elsewhere (:func:`resolve_precision`).
PRECISIONS = ("auto", "float32", "bfloat16")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_side(tile: int | str | None, device: torch.device | str) -> int | None:
    """``tile`` itself, or for ``"auto"`` the device's side (:data:`TILE_CUDA` on a CUDA
    device, else :data:`TILE_CPU`)."""
    if tile == "auto":
        return TILE_CUDA if torch.device(device).type == "cuda" else TILE_CPU
    if tile is not None and (not isinstance(tile, int) or isinstance(tile, bool) or tile < 1):
        raise ValueError(f"tile is {tile!r}; expected a side >= 1, None (whole image) or 'auto'")
    return tile


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype:
    """The dtype apply runs the network's body in: ``"float32"``, ``"bfloat16"``, or
    ``"auto"``: bfloat16 on a CPU with AMX tiles or AVX-512 bfloat16 instructions
    (:func:`onepair.cpu.bfloat16_units`), float32 elsewhere (on a GPU, and on CPUs
    without them, where bfloat16 is slower).

    Only the body runs in bfloat16; its output, the linear path and every sum are
    float32. On a 2-core Xeon with AMX the bodies of the U-Nets measured ran 2.1-2.9
    times faster, and held-out PSNR moved by under 0.01 dB; on a 2-core AMD EPYC
    (Zen 5: AVX-512 bfloat16, no AMX) the default applied 1.3-2.2 times faster
    (docs/PERFORMANCE.md).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision is {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        on_cpu = torch.device(device).type == "cpu"
        return torch.bfloat16 if on_cpu and cpu.bfloat16_units() else torch.float32
    return getattr(torch, precision)


def run_network(network: Network, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``network(x)`` with its body (:meth:`Network.residual`) autocast to ``dtype``; the
    skip path and the sum stay float32."""
    if dtype == torch.float32:
        return network(x)
    skip = network.skip(x)
    with torch.autocast(x.device.type, dtype=dtype):
        residual = network.residual(network.body_input(x, skip))
    return residual.float() + skip


@torch.inference_mode()
def apply_network(
    network: Network,
    image: np.ndarray,
    tile: int | str | None = "auto",
    device: torch.device | str = "cpu",
    on_tile: Callable[[int, int], None] | None = None,
    clip: bool = False,
    precision: str = "auto",
) -> np.ndarray:
    """Run ``network`` on an (H, W, Cin) image; returns (s*H, s*W, Cout), clipped to
    [0, 1] if ``clip`` (on the device, before the copy back). ``precision``: what the
    network's body computes in (:func:`resolve_precision`).

    ``tile`` is the side of the square input tiles (rounded up so that each
    keeps some centre; ``None`` runs the whole image at once; ``"auto"`` the
    device's side, :func:`tile_side`). Peak memory is the image, its output and
    one tile's activations. ``on_tile(done, total)`` is called after each tile,
    for progress displays. On a CUDA device with room for the image, its padded
    copy and its output, all three stay on the device (:func:`apply_on_device`):
    one copy there and one back instead of two per tile.
    """
    tile = tile_side(tile, device)
    image = as_image(image)
    if image.shape[2] != network.in_channels:
        raise ValueError(
            f"image has {image.shape[2]} channels; this imitator expects {network.in_channels}"
            f" (image is {'x'.join(map(str, image.shape))})"
        )
    dtype = resolve_precision(precision, device)
    margin = network.receptive_field().margin
    h, w, _ = image.shape
    if _fits_on(torch.device(device), network, image, margin, tile):
        try:
            return apply_on_device(network, image, tile, torch.device(device), on_tile, clip, dtype)
        except torch.cuda.OutOfMemoryError:  # the estimate was short: tiles from the host
            torch.cuda.empty_cache()
    padded = (
        np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
        if margin
        else image
    )
    out = np.empty((network.scale * h, network.scale * w, network.out_channels), np.float32)
    apply_padded(network, padded, margin, out, tile, device, on_tile, dtype)
    return np.clip(out, 0.0, 1.0, out=out) if clip else out


@torch.inference_mode()
def apply_on_device(
    network: Network,
    image: np.ndarray,
    tile: int | None,
    device: torch.device,
    on_tile: Callable[[int, int], None] | None = None,
    clip: bool = False,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """:func:`apply_network` with the image, its reflect-padded copy and the output held
    on ``device``; the same tiles, so the same result. Needs every side of the image
    longer than the network's margin (reflection, as torch pads, does not repeat)."""
    margin = network.receptive_field().margin
    h, w, _ = image.shape
    s = network.scale
    host = torch.from_numpy(np.ascontiguousarray(image))
    if CUDA_PINNED_INPUT and device.type == "cuda":
        host = host.pin_memory()
    x = host.to(device, non_blocking=True).permute(2, 0, 1)[None]
    if margin:
        x = F.pad(x, (margin, margin, margin, margin), mode="reflect")
    out = torch.empty((s * h, s * w, network.out_channels), dtype=torch.float32, device=device)
    tiles = _tiles(network, h + 2 * margin, w + 2 * margin, margin, tile)
    for index, t in enumerate(tiles):
        piece = x[:, :, t.source[0], t.source[1]].contiguous(memory_format=torch.channels_last)
        out[t.target] = run_network(network, piece, dtype)[0].permute(1, 2, 0)[t.kept]
        if on_tile is not None:
            on_tile(index + 1, len(tiles))
    if clip:
        out.clamp_(0.0, 1.0)
    if not (CUDA_PINNED_OUTPUT and device.type == "cuda"):
        return out.cpu().numpy()
    result = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
    result.copy_(out, non_blocking=True)
    torch.cuda.current_stream(device).synchronize()
    return result.numpy()  # the array keeps its pinned block alive until it is dropped


def _fits_on(
    device: torch.device, network: Network, image: np.ndarray, margin: int, tile: int | None
) -> bool:
    """Whether :func:`apply_on_device` should run: a CUDA device with free memory (its
    own, and what torch holds unused) for twice the image, its padded copy, its output
    and a tile's working memory, and sides the padding can reflect."""
    if device.type != "cuda" or min(image.shape[:2]) <= margin:
        return False
    h, w, c = image.shape
    s, cout = network.scale, network.out_channels
    ph, pw = h + 2 * margin, w + 2 * margin
    held = h * w * c + ph * pw * c + s * s * h * w * cout
    side = ph * pw if tile is None else min(tile + 2 * margin, ph) * min(tile + 2 * margin, pw)
    working = TILE_FLOATS * side * s * s  # activations, FFT buffers: a rough upper figure
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return 4 * (2 * held + working) < free


@torch.inference_mode()
def apply_padded(
    network: Network,
    padded: np.ndarray,
    margin: int,
    out: np.ndarray,
    tile: int | None = 512,
    device: torch.device | str = "cpu",
    on_tile: Callable[[int, int], None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Fill ``out`` (s*h, s*w, Cout) from ``padded``: an (h + 2*margin, w + 2*margin, Cin)
    input that already holds ``margin`` pixels of context on every side (reflected at
    an image's borders; real pixels where it is a band of a larger image, as in
    :mod:`onepair.stream`). Tile origins are aligned to the network's down-sampling
    factor relative to ``padded``'s corner. ``dtype``: what the network's body computes
    in (:func:`run_network`)."""
    tiles = _tiles(network, padded.shape[0], padded.shape[1], margin, tile)
    for index, t in enumerate(tiles):
        # (H, W, C) memory is (1, C, H, W) channels-last: one copy, no transpose
        x = torch.from_numpy(np.ascontiguousarray(padded[t.source]))
        x = x.permute(2, 0, 1)[None].to(device)
        out[t.target] = from_tensor(run_network(network, x, dtype))[
            t.kept
        ]  # (s*th, s*tw, Cout) -> its centre
        if on_tile is not None:
            on_tile(index + 1, len(tiles))


class Tile(NamedTuple):
    """One tile: its rows and columns of the padded input, where its kept centre goes
    in the output, and where that centre lies in the tile's own output."""

    source: tuple[slice, slice]
    target: tuple[slice, slice]
    kept: tuple[slice, slice]


def _tiles(network: Network, ph: int, pw: int, margin: int, tile: int | None) -> list[Tile]:
    """The tiles covering a (ph, pw) input padded by ``margin``: each keeps the pixels
    that see their whole receptive field within it, and together they keep each
    output pixel once."""
    s, mult = network.scale, network.multiple
    overlap = _round_up(margin, mult)
    h, w = ph - 2 * margin, pw - 2 * margin
    if tile is None:
        size_h, size_w = ph, pw
    else:
        largest = max(_round_up(tile, mult), 2 * overlap + mult)
        size_h, size_w = (_even(n, largest, overlap, math.lcm(mult, TILE_ALIGN)) for n in (ph, pw))
    tiles = []
    for top, left in itertools.product(_starts(ph, size_h, overlap), _starts(pw, size_w, overlap)):
        keep_top = margin if top == 0 else top + overlap
        bottom = min(top + size_h, ph)
        keep_bottom = margin + h if bottom == ph else bottom - overlap
        keep_left = margin if left == 0 else left + overlap
        right = min(left + size_w, pw)
        keep_right = margin + w if right == pw else right - overlap
        tiles.append(
            Tile(
                (slice(top, bottom), slice(left, right)),
                (
                    slice(s * (keep_top - margin), s * (keep_bottom - margin)),
                    slice(s * (keep_left - margin), s * (keep_right - margin)),
                ),
                (
                    slice(s * (keep_top - top), s * (keep_bottom - top)),
                    slice(s * (keep_left - left), s * (keep_right - left)),
                ),
            )
        )
    return tiles


def _even(length: int, largest: int, overlap: int, multiple: int) -> int:
    """The tile side, at most ``largest`` and otherwise a multiple of ``multiple``, that
    covers ``length`` in as few tiles as ``largest`` does but of (nearly) equal sides: no
    thin last tile that computes mostly overlap, and one FFT size for the linear path."""
    if length <= largest:
        return largest
    count = -(-(length - 2 * overlap) // (largest - 2 * overlap))
    return min(largest, _round_up(-(-(length - 2 * overlap) // count) + 2 * overlap, multiple))


def _starts(length: int, size: int, overlap: int) -> list[int]:
    """Tile origins: steps of ``size - 2*overlap`` until a tile reaches the end."""
    step = size - 2 * overlap
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + step)
    return starts
