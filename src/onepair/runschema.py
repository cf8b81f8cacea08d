"""The schema of a run folder's ``config.json`` and the checks of its weights file.

A run folder may come from anyone (a download, a colleague, a teacher zoo), so
:meth:`onepair.imitator.Imitator.load` checks it before building anything:

- ``config.json`` against :data:`RUN_FIELDS` and :data:`MODEL_FIELDS` -- every
  field's JSON type and range, unknown fields refused, nested configs
  (``SoftmaxConfig.backbone``) checked recursively. The ranges keep each field
  sane; :data:`MAX_NETWORK_VALUES` bounds what a combination of them may build
  (counted on PyTorch's ``meta`` device, which allocates nothing).
- ``weights.safetensors``: its size against what the rebuilt network needs,
  before reading it; then its header, every tensor's name, dtype and shape
  against the network's, the first mismatch named; then finite values.

Messages name the field, the value that arrived and what is accepted:
``model.width is 5000; expected an integer in 1..1024``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepair.models.network import Skip

SKIPS = tuple(skip.value for skip in Skip)
BACKBONES = ("unet", "plain", "attention")
MAX_NETWORK_VALUES = 2**26  # parameters + buffers: 256 MiB of float32
MAX_CONFIG_BYTES = 2**20  # config.json
MAX_EXTRA_BYTES = 2**26  # metrics.json, history.csv


@dataclass(frozen=True)
class Field:
    """One JSON field: ``kind`` is int, odd (an odd int), number, bool, text, choice,
    config (a nested model config of an architecture in ``choices``) or object (any
    JSON object). Numbers lie in ``low..high``; ``low_open`` excludes ``low``."""

    kind: str
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()
    low_open: bool = False

    def expected(self) -> str:
        span = f"{self.low}..{self.high}"
        interval = f"{'(' if self.low_open else '['}{self.low}, {self.high}]"
        return {
            "int": f"an integer in {span}",
            "odd": f"an odd integer in {span}",
            "number": f"a number in {interval}",
            "bool": "true or false",
            "text": f"a string of at most {self.high} characters",
            "choice": "one of " + ", ".join(self.choices),
            "config": "an object with an architecture of " + ", ".join(self.choices),
            "object": "an object",
        }[self.kind]


def _int(low: int, high: int) -> Field:
    return Field("int", low, high)


def _odd(low: int, high: int) -> Field:
    return Field("odd", low, high)


SKIP = Field("choice", choices=SKIPS)
LINEAR_KERNEL = _odd(1, 63)
LINEAR_BINS = _int(1, 32)

# The one table: architecture -> field -> accepted JSON type and range.
MODEL_FIELDS: dict[str, dict[str, Field]] = {
    "unet": {
        "depth": _int(1, 8),
        "width": _int(1, 1024),
        "kernel_size": _odd(1, 31),
        "convs_per_level": _int(1, 8),
        "growth": _int(1, 4),
        "unshuffle": _int(1, 8),
        "skip": SKIP,
        "linear_kernel": LINEAR_KERNEL,
        "linear_bins": LINEAR_BINS,
        "activation": Field("choice", choices=("leaky-relu", "relu")),
    },
    "plain": {
        "receptive_field": _odd(3, 1023),
        "width": _int(1, 1024),
        "kernel_size": _odd(3, 31),
        "batchnorm": Field("bool"),
        "skip": SKIP,
        "linear_kernel": LINEAR_KERNEL,
        "linear_bins": LINEAR_BINS,
    },
    "attention": {
        "width": _int(1, 1024),
        "blocks": _int(1, 32),
        "heads": _int(1, 64),
        "window": _int(2, 64),
        "expansion": Field("number", 0, 16, low_open=True),
        "skip": SKIP,
        "linear_kernel": LINEAR_KERNEL,
        "linear_bins": LINEAR_BINS,
    },
    "softmax": {"backbone": Field("config", choices=BACKBONES)},
    "filter": {
        "linear_kernel": LINEAR_KERNEL,
        "linear_bins": LINEAR_BINS,
        "stage2_kernel": _int(0, 63),
        "stage2_bins": LINEAR_BINS,
        "refine_layers": _int(0, 32),
        "refine_width": _int(1, 1024),
        "refined_stage2": Field("bool"),
        "refined_bins": _int(0, 32),
    },
}

# config.json's top level; the "fit" settings and a teacher's section are free-form.
RUN_FIELDS: dict[str, Field] = {
    "onepair_version": Field("text", high=100),
    "model": Field("config", choices=tuple(MODEL_FIELDS)),
    "in_channels": _int(1, 64),
    "out_channels": _int(1, 64),
    "scale": _int(1, 8),
    "fit": Field("object"),
    "teacher": Field("object"),
}
RUN_REQUIRED = ("model", "in_channels", "out_channels", "scale")


def _shown(value: Any) -> str:
    """A value as JSON writes it (NaN and Infinity as Python's json does), cut to 60."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def check_field(path: str, value: Any, field: Field) -> None:
    """Raise ValueError unless ``value`` fits ``field``; ``path`` names it (model.width)."""
    kind, number = field.kind, isinstance(value, (int, float)) and not isinstance(value, bool)
    fits_type = {
        "int": number and isinstance(value, int),
        "odd": number and isinstance(value, int),
        "number": number,
        "bool": isinstance(value, bool),
        "text": isinstance(value, str),
        "choice": isinstance(value, str),
        "config": isinstance(value, dict),
        "object": isinstance(value, dict),
    }[kind]
    if not fits_type:
        raise ValueError(
            f"{path} is {_shown(value)} ({_json_type(value)}); expected {field.expected()}"
        )
    if kind in ("int", "odd", "number"):
        low_ok = value > field.low if field.low_open else value >= field.low
        finite = isinstance(value, int) or math.isfinite(value)
        fits = finite and low_ok and value <= field.high and (kind != "odd" or value % 2 == 1)
    elif kind == "text":
        fits = len(value) <= field.high
    elif kind == "choice":
        fits = value in field.choices
    else:
        fits = True
        if kind == "config":
            check_model(value, path, field.choices)
    if not fits:
        raise ValueError(f"{path} is {_shown(value)}; expected {field.expected()}")


def check_model(data: Any, path: str = "model", allowed: tuple[str, ...] = ()) -> None:
    """Check a model config dict against :data:`MODEL_FIELDS` (recursively).

    Missing fields are allowed (the config class's defaults fill them, as for run
    folders written before a field existed); unknown ones are not.
    """
    allowed = allowed or tuple(MODEL_FIELDS)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is {_shown(data)} ({_json_type(data)}); expected an object")
    name = data.get("architecture")
    if name not in allowed:
        shown = _shown(name) if "architecture" in data else "missing"
        raise ValueError(f"{path}.architecture is {shown}; expected one of {', '.join(allowed)}")
    table = MODEL_FIELDS[name]
    unknown = sorted(set(data) - set(table) - {"architecture"}, key=str)
    if unknown:
        raise ValueError(
            f"{path} has unknown fields {unknown} for architecture {name!r}; "
            f"valid fields: {', '.join(table)}"
        )
    for key, field in table.items():
        if key in data:
            check_field(f"{path}.{key}", data[key], field)


def check_run_config(config: Any) -> None:
    """Check a parsed config.json against :data:`RUN_FIELDS` (and the model within)."""
    if not isinstance(config, dict):
        raise ValueError(
            f"the top level is {_shown(config)} ({_json_type(config)}); expected an object"
        )
    unknown = sorted(set(config) - set(RUN_FIELDS), key=str)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; valid fields: {', '.join(RUN_FIELDS)}")
    for key, field in RUN_FIELDS.items():
        if key in config:
            check_field(key, config[key], field)
        elif key in RUN_REQUIRED:
            raise ValueError(f"{key} is missing; expected {field.expected()}")


def network_values(network: Any) -> int:
    """Number of values in a network's parameters and buffers."""
    return sum(t.numel() for t in (*network.parameters(), *network.buffers()))


def read_json(path: Path, limit: int) -> Any:
    """Parse a JSON file of at most ``limit`` bytes; ValueError naming it otherwise."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{path} is {size:,} bytes; expected at most {limit:,}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{path} is not valid JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{path} is not valid JSON: {error}") from None


SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}  # fmt: skip


def check_weights_file(path: Path, expected: dict[str, tuple[str, tuple[int, ...], int]]) -> None:
    """Check a safetensors file against ``expected`` (name -> (dtype, shape, bytes)) from
    its size and header alone: at most the bytes those tensors need plus a header
    allowance, then the same names with the same dtypes and shapes."""
    data_bytes = sum(nbytes for _, _, nbytes in expected.values())
    header_limit = 4096 + 512 * len(expected)
    size = path.stat().st_size
    if size > 8 + header_limit + data_bytes:
        raise ValueError(
            f"{path} is {size:,} bytes; this config's network needs {data_bytes:,} bytes of "
            f"weights (at most {8 + header_limit + data_bytes:,} with the header)"
        )
    with open(path, "rb") as f:
        head = f.read(8)
        (length,) = struct.unpack("<Q", head) if len(head) == 8 else (None,)
        if length is None or length > min(header_limit, size - 8):
            raise ValueError(
                f"{path} is not a safetensors file: header length {length} in a {size}-byte file"
            )
        try:
            header = json.loads(f.read(length))
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{path} has an unreadable safetensors header: {error}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} has a safetensors header that is not an object")
    header.pop("__metadata__", None)
    for name, (dtype, shape, _) in expected.items():
        entry = header.get(name)
        if entry is None:
            raise ValueError(
                f"{path}: tensor {name!r} is missing; config.json's network needs "
                f"{dtype} {list(shape)}"
            )
        if not isinstance(entry, dict):
            raise ValueError(
                f"{path}: tensor {name!r} has header entry {_shown(entry)}; expected an object"
            )
        got = (entry.get("dtype"), entry.get("shape"))
        if got != (dtype, list(shape)):
            raise ValueError(
                f"{path}: tensor {name!r} is {got[0]} {got[1]}; config.json's network "
                f"needs {dtype} {list(shape)}"
            )
    extra = sorted(set(header) - set(expected), key=str)
    if extra:
        raise ValueError(f"{path}: tensor {extra[0]!r} is not part of config.json's network")
