"""Fuzz onepair's loaders with generated and mutated files; print what happened.

Loaders: ``load_image`` on .png, .jpg, .tif and .npy files, ``decode_image`` on
bytes, and ``Imitator.load`` on run folders. Each case is a small valid file
written by a real encoder (Pillow, pypng, tifffile, np.save, ``Imitator.save``)
or one mutated from it: bit flips, truncation, insertions, deletions, splices,
and format-aware header rewrites (PNG IHDR with or without a fixed CRC, JPEG
SOF sizes, TIFF tags and IFD links, NPY shape and dtype, safetensors headers,
config.json values). The property, per case: the loader returns a valid result
(an image: float32, (H, W, C), C >= 1, finite; an Imitator) or raises the
loader's documented error (ImageError; ValueError or FileNotFoundError for run
folders) naming the file -- never another exception, never more than
``--seconds`` per case, never an allocation the memory limit refuses.

    python fuzz/fuzz.py --cases 10000              # the long run (make fuzz)
    python fuzz/fuzz.py --cases 300 --seed 1       # a quick one
    python fuzz/fuzz.py --seed 1 --case 1646       # one case again, as the summary named it

Exit status 1 when any case broke the property; the failures are listed.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_LOADERS = ("png", "jpeg", "tiff", "npy", "bytes")
LOADERS = (*IMAGE_LOADERS, "run")
SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "npy": ".npy"}
INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 64, 255, 256, 2**14, 2**16 - 1, 2**16)
HUGE = (3000, 9000, 12000, 2**24, 2**28, 2**31 - 1, 2**32 - 1)  # the first: big, under limits


def pick(rng: np.random.Generator, options: tuple | list) -> Any:
    """One of ``options``, as it is (numpy's choice would convert it)."""
    return options[int(rng.integers(0, len(options)))]


class Hang(Exception):
    """A case ran past the hard alarm."""


# ----------------------------------------------------------------------------- valid files


def _pixels(rng: np.random.Generator, channels: int, dtype: str) -> np.ndarray:
    h, w = (int(v) for v in rng.integers(1, 41, 2))
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is None:
        return rng.normal(0.5, 0.5, (h, w, channels)).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, (h, w, channels), dtype=dtype)


def valid_png(rng: np.random.Generator) -> tuple[bytes, bool]:
    """An 8- or 16-bit gray/gray+alpha/RGB/RGBA PNG (pypng, maybe interlaced), or a
    Pillow palette / bilevel / low-bit-depth one."""
    import png
    from PIL import Image

    buffer = io.BytesIO()
    choice = int(rng.integers(0, 4))
    if choice < 2:
        channels, bits = int(rng.integers(1, 5)), (8, 16)[choice]
        data = _pixels(rng, channels, "uint16" if bits == 16 else "uint8")
        h, w, _ = data.shape
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels] + f";{bits}"
        writer = png.from_array(data.reshape(h, w * channels), mode)
        writer.info["interlace"] = bool(rng.integers(0, 2))
        writer.write(buffer)
    elif choice == 2:
        bits = int(pick(rng, [1, 2, 4]))
        data = _pixels(rng, 1, "uint8") % (2**bits)
        h, w, _ = data.shape
        png.Writer(w, h, greyscale=True, bitdepth=bits).write(buffer, data[:, :, 0].tolist())
    else:
        mode = str(pick(rng, ["P", "1", "L", "RGB", "RGBA", "LA", "I;16"]))
        data = _pixels(rng, 3, "uint8")
        Image.fromarray(data).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue(), True


def valid_jpeg(rng: np.random.Generator) -> tuple[bytes, bool]:
    """A gray, RGB or CMYK JPEG at a random quality, maybe progressive."""
    from PIL import Image

    mode = str(pick(rng, ["L", "RGB", "CMYK"]))
    image = Image.fromarray(_pixels(rng, 3, "uint8")).convert(mode)
    buffer = io.BytesIO()
    progressive = bool(rng.integers(0, 2)) and mode != "CMYK"
    image.save(buffer, format="JPEG", quality=int(rng.integers(5, 100)), progressive=progressive)
    return buffer.getvalue(), True


def valid_tiff(rng: np.random.Generator) -> tuple[bytes, bool]:
    """A TIFF: 8/16-bit, int8/int16, float16/32/64; 1-5 channels; planar or contiguous;
    multi-page; tiled; zlib-compressed with or without a predictor."""
    import tifffile

    dtype = str(pick(rng, ["uint8", "uint16", "float32", "int8", "int16", "float16", "float64"]))
    layout = str(pick(rng, ["gray", "rgb", "channels", "planar", "pages"]))
    channels = {"gray": 1, "rgb": 3, "channels": int(rng.integers(2, 6))}.get(layout, 3)
    data = _pixels(rng, channels, dtype)
    kwargs: dict = {"photometric": "rgb" if layout in ("rgb", "planar") else "minisblack"}
    if layout in ("rgb", "channels"):
        kwargs["planarconfig"] = "contig"
    if layout == "gray":
        data = data[:, :, 0]
    elif layout == "planar":
        data, kwargs["planarconfig"] = np.moveaxis(data, 2, 0), "separate"
    elif layout == "pages":
        data = np.moveaxis(data, 2, 0)[: int(rng.integers(2, 4))]  # (pages, H, W)
    if rng.integers(0, 3) == 0:
        kwargs["tile"] = (16, 16)
    if rng.integers(0, 3) == 0:
        kwargs["compression"] = "zlib"
        if np.issubdtype(dtype, np.integer) and rng.integers(0, 2):
            kwargs["predictor"] = True
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, **kwargs)
    return buffer.getvalue(), layout != "pages"  # several pages: refused


def valid_npy(rng: np.random.Generator) -> tuple[bytes, bool]:
    """An .npy of an image-like array, or of one that must be refused (object, complex,
    strings, records, 1-D, 4-D)."""
    kind = str(pick(rng, ["float32", "float64", "float16", "uint8", "uint16", "int32", "bool"]))
    array: np.ndarray = _pixels(rng, int(rng.integers(1, 5)), kind if kind != "bool" else "uint8")
    if kind == "bool":
        array = array > 127
    odd = int(rng.integers(0, 10))
    if odd == 0:
        array = np.array([[{"a": 1}, None]], dtype=object)
    elif odd == 1:
        array = array.astype(np.complex64)
    elif odd == 2:
        array = np.array([["ab", "c"]])
    elif odd == 3:
        array = np.zeros((3, 4), dtype=[("a", "<f4"), ("b", "<i2")])
    elif odd == 4:
        array = array.reshape(-1)
    elif odd == 5:
        array = array[None]
    elif odd == 6:
        array = np.asfortranarray(array[:, :, 0])
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype == object)
    return buffer.getvalue(), odd > 5  # objects, complex, text, records, 1-D, 4-D: refused


def valid_other(rng: np.random.Generator) -> tuple[bytes, bool]:
    """A GIF or BMP: what a file named .jpg may hold instead (format confusion)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_pixels(rng, 3, "uint8")).save(buffer, format=str(pick(rng, ["GIF", "BMP"])))
    return buffer.getvalue(), False


def mutate_other_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite a GIF's screen size or a BMP's width and height."""
    out = bytearray(data)
    size = _number(rng) % 65536, _number(rng) % 65536
    if out[:3] == b"GIF" and len(out) >= 10:
        struct.pack_into("<HH", out, 6, *size)
    elif out[:2] == b"BM" and len(out) >= 26:
        struct.pack_into("<ii", out, 18, *size)
    return bytes(out)


VALID: dict[str, Callable[[np.random.Generator], tuple[bytes, bool]]] = {
    # format -> generator of (file bytes, whether a correct loader must accept it)
    "png": valid_png,
    "jpeg": valid_jpeg,
    "tiff": valid_tiff,
    "npy": valid_npy,
    "other": valid_other,
}


# ----------------------------------------------------------------------------- mutations


def _number(rng: np.random.Generator) -> int:
    pool = INTERESTING + HUGE
    return (
        int(pool[rng.integers(0, len(pool))]) if rng.integers(0, 4) else int(rng.integers(0, 2**32))
    )


def mutate_bytes(data: bytes, rng: np.random.Generator, other: bytes = b"") -> bytes:
    """One to three generic mutations: flips, byte sets, truncation, insertion, deletion,
    duplication, or a splice with ``other``."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        n = len(out)
        op = int(rng.integers(0, 7))
        at = int(rng.integers(0, n)) if n else 0
        if op == 0 and n:
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, n))
                out[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and n:
            out[at] = int(pick(rng, [0, 1, 0x7F, 0x80, 0xFF, int(rng.integers(0, 256))]))
        elif op == 2:
            out = out[:at]
        elif op == 3:
            out[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif op == 4:
            del out[at : at + int(rng.integers(1, 64))]
        elif op == 5:
            out[at:at] = out[at : at + int(rng.integers(1, 256))]
        elif other:
            cut = int(rng.integers(0, len(other)))
            out = out[:at] + bytearray(other[cut:])
    return bytes(out)


def mutate_png_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite an IHDR field (width, height, bit depth, colour type, interlace) or a chunk
    length; fix the CRC half of the time."""
    out = bytearray(data)
    if len(out) < 33:
        return bytes(out)
    field_ = int(rng.integers(0, 6))
    if field_ < 2:
        struct.pack_into(">I", out, 16 + 4 * field_, _number(rng))
    elif field_ < 5:
        out[24 + field_ - 2] = int(pick(rng, [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255]))
    else:
        struct.pack_into(">I", out, 8, _number(rng))
    if rng.integers(0, 2):
        struct.pack_into(">I", out, 29, zlib.crc32(bytes(out[12:29])))
    return bytes(out)


def mutate_jpeg_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite the frame header (SOF0/SOF2): precision, height, width or component count."""
    out = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = out.find(marker)
        if at >= 0 and at + 10 <= len(out):
            which = int(rng.integers(0, 4))
            if which == 0:
                out[at + 4] = int(pick(rng, [0, 1, 8, 12, 16, 255]))
            elif which < 3:
                struct.pack_into(">H", out, at + 5 + 2 * (which - 1), _number(rng) % 65536)
            else:
                out[at + 9] = int(pick(rng, [0, 1, 2, 3, 4, 5, 255]))
            break
    return bytes(out)


def mutate_tiff_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite one tag of the first IFD (sizes, bits, samples, strips, tiles, format,
    compression), or point the next-IFD link back at the first IFD (a loop)."""
    out = bytearray(data)
    if len(out) < 8 or out[:2] not in (b"II", b"MM") or out[2:4] not in (b"*\x00", b"\x00*"):
        return bytes(out)
    e = "<" if out[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(e + "I", out, 4)
    if ifd + 2 > len(out):
        return bytes(out)
    (count,) = struct.unpack_from(e + "H", out, ifd)
    if ifd + 2 + 12 * count + 4 > len(out):
        return bytes(out)
    if rng.integers(0, 6) == 0:
        struct.pack_into(e + "I", out, ifd + 2 + 12 * count, ifd)
        return bytes(out)
    wanted = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 339}
    entries = [
        ifd + 2 + 12 * i
        for i in range(count)
        if struct.unpack_from(e + "H", out, ifd + 2 + 12 * i)[0] in wanted
    ]
    if not entries:
        return bytes(out)
    at = entries[int(rng.integers(0, len(entries)))]
    kind = struct.unpack_from(e + "H", out, at + 2)[0]
    value = _number(rng)
    if kind == 3:
        struct.pack_into(e + "H", out, at + 8, value % 65536)
    else:
        struct.pack_into(e + "I", out, at + 8, value)
    if rng.integers(0, 4) == 0:
        struct.pack_into(e + "I", out, at + 4, _number(rng))  # the value count
    return bytes(out)


def mutate_npy_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Rewrite the header dict: a huge, zero, negative or extra-dimensional shape, another
    dtype (object, complex, strings, records, big-endian), or Fortran order."""
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        return data
    major = data[6]
    size_at, size_fmt = (8, "<H") if major == 1 else (8, "<I")
    (length,) = struct.unpack_from(size_fmt, data, size_at)
    start = size_at + struct.calcsize(size_fmt)
    header, body = data[start : start + length], data[start + length :]
    try:
        meta = eval(header.decode("latin1"), {"__builtins__": {}})  # noqa: S307 - our own bytes
    except Exception:
        return data
    which = int(rng.integers(0, 4))
    if which == 0:
        n = int(rng.integers(0, 5))
        meta["shape"] = tuple(int(pick(rng, [0, 1, 3, 64, 65, -1, *HUGE])) for _ in range(n))
    elif which == 1:
        meta["descr"] = str(pick(rng, ["|O", "<c8", "<U2", ">f4", ">u2", "|b1", "<f2", "<M8[s]"]))
    elif which == 2:
        meta["fortran_order"] = not meta["fortran_order"]
    else:
        shape = list(meta["shape"]) or [1]
        shape[int(rng.integers(0, len(shape)))] = _number(rng)
        meta["shape"] = tuple(shape)
    text = repr(meta).encode("latin1")
    text += b" " * ((-(start + len(text) + 1)) % 64) + b"\n"
    return data[:size_at] + struct.pack(size_fmt, len(text)) + text + body


HEADER_MUTATION = {
    "png": mutate_png_header,
    "jpeg": mutate_jpeg_header,
    "tiff": mutate_tiff_header,
    "npy": mutate_npy_header,
    "other": mutate_other_header,
}


def image_case(kind: str, rng: np.random.Generator) -> tuple[str, str, bytes, bool]:
    """(format, how it was made, file bytes, whether it must load) for one image case;
    ``kind`` 'bytes' draws a PNG, TIFF or JPEG (or junk) for ``decode_image``."""
    fmt = kind if kind != "bytes" else str(pick(rng, ["png", "tiff", "jpeg", "junk"]))
    if kind == "jpeg" and rng.integers(0, 8) == 0:
        fmt = "other"  # a GIF or BMP named .jpg
    if fmt == "junk":
        junk_bytes = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        return fmt, "junk", junk_bytes, False
    data, loadable = VALID[fmt](rng)
    how = int(rng.integers(0, 10))
    if how < 2:
        return fmt, "valid", data, loadable
    if how < 6:
        return fmt, "header", HEADER_MUTATION[fmt](data, rng), False
    if how < 8:
        return fmt, "header+bytes", mutate_bytes(HEADER_MUTATION[fmt](data, rng), rng), False
    return fmt, "bytes", mutate_bytes(data, rng, VALID[fmt](rng)[0]), False


# ----------------------------------------------------------------------------- run folders


def _tiny_runs() -> dict[str, dict[str, bytes]]:
    """One small saved run folder per architecture: file name -> bytes."""
    import torch

    from onepair.imitator import Imitator
    from onepair.models import AttentionConfig, PlainConfig, SoftmaxConfig, UNetConfig, build

    torch.manual_seed(0)
    recipes = {
        "unet": (UNetConfig(depth=2, width=4, linear_kernel=3), 1, 3, 1),
        "plain": (
            PlainConfig(receptive_field=5, width=4, batchnorm=True, skip="identity"),
            3,
            3,
            1,
        ),
        "attention": (AttentionConfig(width=4, blocks=2, window=4, linear_kernel=3), 1, 1, 2),
        "softmax": (SoftmaxConfig(UNetConfig(depth=2, width=4, skip="none")), 3, 4, 1),
    }
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, cin, cout, scale) in recipes.items():
            history = [{"step": 1.0, "seconds": 0.1, "loss": 0.5, "lr": 1e-3, "val_psnr": 20.0}]
            folder = Imitator(
                build(config, cin, cout, scale), config, {"seed": 0}, {"psnr": 30.0}, history
            ).save(Path(tmp) / name)
            runs[name] = {p.name: p.read_bytes() for p in folder.iterdir()}
    return runs


def junk(rng: np.random.Generator, depth: int = 0) -> object:
    """A JSON value of any type: wrong types, huge/negative/NaN numbers, nested junk."""
    roll = int(rng.integers(0, 12 if depth < 3 else 10))
    simple = [
        None, True, False, -1, 0, 3.0, 0.5, float("nan"), float("inf"), -float("inf"), 1e308,
        10**30, -(2**63), 2**64, "", "unet", "x" * 300, "3",
    ]  # fmt: skip
    if roll < 4:
        return simple[int(rng.integers(0, len(simple)))]
    if roll < 8:
        return _number(rng) * int(pick(rng, [1, -1]))
    if roll < 10:
        return float(rng.normal(0, 10.0 ** int(rng.integers(0, 12))))
    if roll == 10:
        return [junk(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    return {str(junk(rng, 3))[:8]: junk(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))}


def _places(tree: object, at: tuple = ()) -> list[tuple]:
    """Paths to every value inside nested dicts."""
    if not isinstance(tree, dict):
        return []
    out = []
    for key, value in tree.items():
        out.append((*at, key))
        out += _places(value, (*at, key))
    return out


def _get(tree: dict, path: tuple) -> dict:
    for key in path:
        tree = tree[key]
    return tree


BIG_FIELDS = {
    "depth": (8, 9, 64, 10**6),
    "width": (1024, 1025, 10**5, 10**9),
    "receptive_field": (1023, 1025, 10**5),
    "kernel_size": (31, 33, 1001),
    "convs_per_level": (8, 9, 10**4),
    "linear_kernel": (63, 65, 10**4 + 1),
    "blocks": (32, 33, 10**5),
    "heads": (64, 65, 10**4),
    "window": (64, 65, 10**5),
    "expansion": (16.0, 16.5, 1e12),
    "in_channels": (64, 65, 10**6),
    "out_channels": (64, 65, 10**6),
    "scale": (8, 9, 10**4),
}


def mutate_config(config: dict, rng: np.random.Generator, others: list[dict]) -> bytes:
    """config.json text with one or two structural mutations, or a textual one."""
    config = json.loads(json.dumps(config))
    for _ in range(int(rng.integers(1, 3))):
        places = _places(config)
        path = places[int(rng.integers(0, len(places)))] if places else ()
        op = int(rng.integers(0, 10))
        if not isinstance(config, dict) or not path:
            break
        parent, key = _get(config, path[:-1]), path[-1]
        if op < 3:
            parent[key] = junk(rng)
        elif op == 3:
            del parent[key]
        elif op == 4:
            parent[str(junk(rng, 3))[:12] or "extra"] = junk(rng)
        elif op == 5:
            config["model"] = others[int(rng.integers(0, len(others)))]["model"]
        elif op == 6 and isinstance(config.get("model"), dict):
            config["model"]["architecture"] = str(
                pick(rng, ["vit", "UNet", "", "softmax", "plain"])
            )
        else:
            models = [p for p in _places(config) if p[-1] in BIG_FIELDS]
            if models:
                path = models[int(rng.integers(0, len(models)))]
                _get(config, path[:-1])[path[-1]] = pick(rng, BIG_FIELDS[path[-1]])
    text = json.dumps(config, indent=2)
    roll = int(rng.integers(0, 12))
    if roll == 0:
        return mutate_bytes(text.encode(), rng)
    if roll == 1:
        return json.dumps(junk(rng)).encode()
    if roll == 2:
        return b"[" * int(pick(rng, [100, 10**5])) + b"]" * int(rng.integers(0, 2))
    return text.encode()


def mutate_weights(data: bytes, rng: np.random.Generator, others: list[bytes]) -> bytes:
    """weights.safetensors with its header or data damaged, or another network's weights."""
    (length,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    op = int(rng.integers(0, 9))
    if op == 0:
        return data[: int(rng.integers(0, len(data)))]
    if op == 1:
        return mutate_bytes(data[: 8 + length], rng) + body
    if op == 2:
        lengths = [*HUGE, 2**63, 2**64 - 1, len(data)]
        return struct.pack("<Q", lengths[int(rng.integers(0, len(lengths)))]) + data[8:]
    if op == 3:
        return mutate_bytes(data, rng)
    if op == 4:
        return others[int(rng.integers(0, len(others)))]
    if op == 5:  # NaN or infinity in a tensor
        start = 8 + length + 4 * int(rng.integers(0, max(1, len(body) // 4)))
        return (
            data[:start] + pick(rng, [b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f"]) + data[start + 4 :]
        )
    names = sorted(k for k in header if k != "__metadata__")
    name = names[int(rng.integers(0, len(names)))]
    entry = header[name]
    which = int(rng.integers(0, 6))
    if which == 0:
        entry["shape"] = [int(pick(rng, [0, 1, 2, 3, *HUGE])) for _ in entry["shape"]] or [2**31]
    elif which == 1:
        entry["dtype"] = str(pick(rng, ["F16", "F64", "I64", "U8", "BOOL", "BF16", "F32", "X9"]))
    elif which == 2:
        entry["data_offsets"] = [int(rng.integers(0, 2**40)), int(pick(rng, HUGE))]
    elif which == 3:
        header[name + "_extra"] = dict(entry)
    elif which == 4:
        del header[name]
    else:
        header[name] = junk(rng)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def run_case_files(
    rng: np.random.Generator, runs: dict[str, dict[str, bytes]]
) -> tuple[str, dict[str, bytes | None]]:
    """(how, file name -> bytes or None for absent) for one run-folder case."""
    names = sorted(runs)
    base = runs[names[int(rng.integers(0, len(names)))]]
    files: dict[str, bytes | None] = dict(base)
    configs = [json.loads(r["config.json"]) for r in runs.values()]
    weights = [r["weights.safetensors"] for r in runs.values()]
    roll = int(rng.integers(0, 20))
    if roll < 2:
        return "valid", files
    if roll < 10:
        files["config.json"] = mutate_config(json.loads(base["config.json"]), rng, configs)
        return "config", files
    if roll < 17:
        files["weights.safetensors"] = mutate_weights(base["weights.safetensors"], rng, weights)
        return "weights", files
    if roll == 17:
        files[str(pick(rng, ["config.json", "weights.safetensors"]))] = None
        return "missing", files
    target = str(pick(rng, ["metrics.json", "history.csv"]))
    files[target] = mutate_bytes(base[target], rng, b'{"a": [1, {"b": NaN}]}\n1,2,3,x,,7\n')
    return "extras", files


# ----------------------------------------------------------------------------- running


@dataclass
class Summary:
    """What a fuzz run saw: cases and outcomes per loader, errors by type, failures."""

    cases: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")
    seconds: float = 0.0

    def text(self) -> str:
        lines = [f"{sum(self.cases.values())} cases in {self.seconds:.1f} s"]
        for loader in LOADERS:
            if self.cases[loader]:
                outs = {k[1]: v for k, v in sorted(self.outcomes.items()) if k[0] == loader}
                errs = {k[1]: v for k, v in sorted(self.errors.items()) if k[0] == loader}
                lines.append(f"  {loader:6} {self.cases[loader]:6} cases  {outs}  errors {errs}")
        lines.append(f"slowest case: {self.slowest[0]:.3f} s ({self.slowest[1]})")
        lines.append(f"failures: {len(self.failures)}")
        lines += [f"  {failure}" for failure in self.failures[:50]]
        return "\n".join(lines)


def _valid_image(array: object) -> bool:
    return (
        isinstance(array, np.ndarray)
        and array.dtype == np.float32
        and array.ndim == 3
        and min(array.shape) >= 1
        and bool(np.isfinite(array).all())
    )


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _on_alarm(signum: int, frame: object) -> None:
    raise Hang("case still running at the hard alarm")


def run_case(
    index: int,
    seed: int,
    workdir: Path,
    runs: dict[str, dict[str, bytes]],
    loaders: tuple[str, ...] = LOADERS,
) -> tuple[str, str, str, str | None]:
    """Run case ``index``: (loader, how it was made, outcome, failure or None)."""
    from onepair.codec import decode_image
    from onepair.images import ImageError, load_image
    from onepair.imitator import Imitator

    loader = loaders[index % len(loaders)]
    rng = np.random.default_rng([seed, index])
    if loader == "run":
        how, files = run_case_files(rng, runs)
        must_load = how == "valid"
        folder = workdir / "run"
        folder.mkdir(exist_ok=True)
        for name, data in files.items():
            (folder / name).unlink(missing_ok=True)
            if data is not None:
                (folder / name).write_bytes(data)
        call: Callable[[], object] = lambda: Imitator.load(folder, device="cpu")  # noqa: E731
        allowed: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)
        names = ("config.json", "weights.safetensors", "metrics.json", "history.csv")
    else:
        fmt, how, data, must_load = image_case(loader, rng)
        how = f"{fmt} {how}"
        if loader == "bytes":
            call = lambda: decode_image(data, "fuzz-bytes")  # noqa: E731
            names = ("fuzz-bytes",)
        else:
            path = workdir / f"case{SUFFIX[loader]}"
            path.write_bytes(data)
            call = lambda: load_image(path)  # noqa: E731
            names = (str(path),)
        allowed = (ImageError,)
    try:
        result = call()
    except allowed as error:
        if any(isinstance(e, MemoryError) for e in _causes(error)):
            return loader, how, "refused", f"memory: {type(error).__name__}: {error}"[:300]
        if not any(name in str(error) for name in names):
            return loader, how, "refused", f"message names no file: {error}"[:300]
        if must_load:
            return loader, how, "refused", f"a valid file was refused: {error}"[:300]
        return loader, how, f"refused:{type(error).__name__}", None
    except Hang:
        return loader, how, "hang", "hang"
    except BaseException as error:  # noqa: BLE001 - that is what we are looking for
        if isinstance(error, KeyboardInterrupt):
            raise
        tail = traceback.format_exception(type(error), error, error.__traceback__)[-3:]
        return (
            loader,
            how,
            "crash",
            f"{type(error).__name__}: {error}"[:200] + " | " + "".join(tail)[-400:],
        )
    if loader == "run":
        ok = isinstance(result, Imitator)
    elif loader == "bytes":
        ok = isinstance(result, tuple) and _valid_image(result[0]) and result[1] in (8, 16, 32)
    else:
        ok = _valid_image(result)
    if not ok:
        return loader, how, "loaded", f"invalid result {type(result)}"
    if loader != "run" and not _same_again(call, result):
        return loader, how, "loaded", "loading it again gave other pixels (uninitialised memory?)"
    return loader, how, "loaded", None


def _same_again(call: Callable[[], object], result: object) -> bool:
    """Whether a second load, after the heap is filled with a marker, gives the same image:
    a decoder that leaves part of its output uninitialised shows other memory there."""
    image = result[0] if isinstance(result, tuple) else result
    stir = [np.full(image.size + 64 * k, 0.123, np.float64) for k in range(4)]
    del stir
    again = call()
    again = again[0] if isinstance(again, tuple) else again
    return bool(np.array_equal(image, again))


def run(
    cases: int,
    seed: int = 0,
    seconds: float = 5.0,
    hard: float = 60.0,
    loaders: tuple[str, ...] = LOADERS,
) -> Summary:
    """Run ``cases`` cases (split evenly over ``loaders``) and summarise them."""
    import logging

    quiet = logging.getLogger("tifffile")  # damaged files make tifffile log; we report them
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    summary = Summary()
    runs = _tiny_runs()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index in range(cases):
                t0 = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, hard)
                try:
                    loader, how, outcome, failure = run_case(index, seed, Path(tmp), runs, loaders)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                took = time.perf_counter() - t0
                summary.cases[loader] += 1
                summary.outcomes[loader, outcome.split(":")[0]] += 1
                if ":" in outcome:
                    summary.errors[loader, outcome.split(":")[1]] += 1
                if took > summary.slowest[0]:
                    summary.slowest = (took, f"case {index}, {loader}, {how}")
                if took > seconds:
                    failure = failure or f"took {took:.1f} s, over {seconds} s"
                if failure:
                    summary.failures.append(f"case {index} ({loader}, {how}): {failure}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    summary.seconds = time.perf_counter() - start
    return summary


def limit_memory(gib: float) -> None:
    """Cap the address space at what the process holds now plus ``gib`` GiB."""
    import resource

    status = Path("/proc/self/status").read_text()
    held = int(status.split("VmSize:")[1].split()[0]) * 1024
    limit = held + int(gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0, help="most seconds per case")
    parser.add_argument("--memory-gib", type=float, default=2.0, help="address space per case")
    parser.add_argument("--loaders", default=",".join(LOADERS), help="comma-separated")
    parser.add_argument("--case", type=int, help="run only this case index (same --loaders)")
    args = parser.parse_args(argv)
    loaders = tuple(args.loaders.split(","))
    if not set(loaders) <= set(LOADERS):
        parser.error(f"--loaders {args.loaders}; expected some of {','.join(LOADERS)}")
    import torch

    torch.set_num_threads(1)
    _tiny_runs()  # import everything before the memory cap
    limit_memory(args.memory_gib)
    if args.case is not None:  # one case again, e.g. to debug a failure the summary listed
        with tempfile.TemporaryDirectory() as tmp:
            print(run_case(args.case, args.seed, Path(tmp), _tiny_runs(), loaders))
        return 0
    summary = run(args.cases, args.seed, args.seconds, loaders=loaders)
    print(summary.text())
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
