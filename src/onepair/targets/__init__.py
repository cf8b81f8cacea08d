"""Black boxes to imitate, named by spec strings.

A target is anything with ``__call__(image) -> image`` in the image convention
(:class:`Target`). :func:`load_target` turns a spec into one; it is the only
place a spec is resolved, through two literal tables: :data:`ADAPTERS` (how a
model is reached: ``py:``, ``cmd:``, ``http://``, ``onnx:``, ``torch:``,
``pairs:``, ``run:``) and the zoo's built-in names in
:mod:`onepair.targets.builtin`.

Grammar::

    spec     = [degradation "|"]* model
    model    = KIND ":" LOCATION ["#" options]   (KIND in ADAPTERS)
             | NAME [":" options]                (NAME in builtin.MODELS)
    options  = key=value ["," key=value]*

``noise:sigma=25|tv-denoise:weight=0.1`` is "the model tv-denoise, applied to
images with Gaussian noise of sigma 25 added"; ``onnx:model.onnx#layout=nhwc``
runs an ONNX file with NHWC input; ``cmd:./denoise {input} {output}#timeout=30``
runs a program. The ``#`` separates onepair's options from the location, so a
location may hold ``:``, ``,`` and ``|`` (a URL's fragment is never sent).
"""

from __future__ import annotations

import importlib
import inspect
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from onepair.images import as_image
from onepair.targets.builtin import DEGRADATIONS, MODELS


@runtime_checkable
class Target(Protocol):
    """A black-box image-to-image model."""

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@dataclass
class SpecTarget:
    """A target built from a spec: optional degradations, then a model.

    ``target(image)`` runs the model only. ``target.degrade(clean, seed)``
    makes the model's input from a clean image (identity without
    degradations). ``queries`` and ``pixels`` count what the model was asked:
    the attacker's cost.
    """

    spec: str
    model: Callable[[np.ndarray], np.ndarray]
    degradations: list[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = field(
        default_factory=list
    )
    queries: int = 0
    pixels: int = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = as_image(image, "target input")
        self.queries += 1
        self.pixels += image.shape[0] * image.shape[1]
        output = as_image(self.model(image), f"output of {self.spec}")
        (h, w), (oh, ow) = image.shape[:2], output.shape[:2]
        if oh % h or ow % w or oh // h != ow // w or oh < h:
            raise ValueError(
                f"{self.spec} answered a {h}x{w} image with {oh}x{ow}; a target's output must "
                f"be the input's size or an integer multiple of it"
            )
        return output

    def degrade(self, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """The model's input made from ``image``; the seed is mixed with the image's content."""
        image = as_image(image)
        digest = zlib.crc32(np.ascontiguousarray(image[::7, ::7]).tobytes())
        rng = np.random.default_rng([seed, digest])
        for step in self.degradations:
            image = step(image, rng)
        return image


# kind -> (module defining ``open_target(location, **options)``, syntax, description).
# Modules are imported only when their kind is used: heavy dependencies stay optional.
ADAPTERS: dict[str, tuple[str, str, str]] = {
    "py": ("onepair.targets.pyfunc", "py:package.module:function", "a Python function"),
    "cmd": (
        "onepair.targets.command",
        "cmd:PROGRAM ARGS {input} {output}",
        "an external program on temporary files, run without a shell",
    ),
    "http": ("onepair.targets.web", "http://HOST:PORT/PATH", "a web API: POST a PNG, get one back"),
    "https": ("onepair.targets.web", "https://HOST/PATH", "the same over TLS"),
    "onnx": ("onepair.targets.onnxfile", "onnx:FILE", "an ONNX model run by onnxruntime"),
    "torch": (
        "onepair.targets.torchfile",
        "torch:FILE",
        "PyTorch weights; the architecture is detected by spandrel",
    ),
    "pairs": (
        "onepair.targets.folder",
        "pairs:DIR",
        "precomputed outputs: DIR/inputs/NAME and DIR/outputs/NAME",
    ),
    "run": ("onepair.targets.runfolder", "run:DIR", "an imitator or teacher run folder"),
}


def load_target(spec: str | Callable[[np.ndarray], np.ndarray]) -> SpecTarget:
    """Parse a spec string (or wrap a callable) into a :class:`SpecTarget`.

    >>> load_target("gaussian-blur:sigma=1.5")(np.zeros((8, 8, 1))).shape
    (8, 8, 1)
    """
    if callable(spec) and not isinstance(spec, str):
        name = getattr(spec, "__name__", type(spec).__name__)
        return SpecTarget(f"py:{name}", spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"target spec is {spec!r}; expected a string like 'gaussian-blur:sigma=2' "
            f"or one starting with {', '.join(k + ':' for k in ADAPTERS)}"
        )
    rest = spec.strip()
    steps = []
    while "|" in rest:
        head, _, tail = rest.partition("|")
        if head.partition(":")[0].strip() not in DEGRADATIONS:
            break
        name, params = _parse(head)
        function = DEGRADATIONS[name][0]
        steps.append(_bind(function, _check_params(function, params, head, skip=2)))
        rest = tail.strip()
    return SpecTarget(redact(spec), _model(rest, spec), steps)


def redact(spec: str) -> str:
    """``spec`` with secrets (``token=...``) masked: what run folders and reports record."""
    return re.sub(r"(\btoken=)[^,#|]*", r"\1***", spec)


def _model(text: str, spec: str) -> Callable[[np.ndarray], np.ndarray]:
    kind, colon, location = text.partition(":")
    kind = kind.strip().lower()
    if colon and kind in ADAPTERS:
        if kind in ("http", "https"):
            location = text
        head, hash_, option_text = location.rpartition("#")
        if hash_ and _looks_like_options(option_text):
            location = head
        else:  # a '#' that is part of the location (e.g. a colour '#ff0000'), not options
            hash_, option_text = "", ""
        location = location.strip()
        if not location:
            raise ValueError(
                f"target spec {spec!r} names no location after {kind + ':'!r}; "
                f"expected {ADAPTERS[kind][1]}"
            )
        options = _options(option_text, text) if hash_ else {}
        opener = importlib.import_module(ADAPTERS[kind][0]).open_target
        if _takes_any_keyword(opener):
            options = {k: _value(v) for k, v in options.items()}
        else:
            options = _check_params(opener, options, text, skip=1)
        return opener(location, **options)
    name, params = _parse(text)
    if name not in MODELS:
        hint = (
            " (a degradation needs a model after it: 'noise:sigma=25|tv-denoise')"
            if name in DEGRADATIONS
            else ""
        )
        raise ValueError(
            f"unknown target {name!r} in spec {spec!r}{hint}; known targets: "
            f"{', '.join(MODELS)}; adapters: {', '.join(v[1] for v in ADAPTERS.values())}; "
            f"degradations to put in front with '|': {', '.join(DEGRADATIONS)}"
        )
    function = MODELS[name][0]
    return _bind(function, _check_params(function, params, text, skip=1))


def describe() -> list[tuple[str, str, str]]:
    """(kind, name or syntax with default parameters, description) for every known name."""
    rows = []
    for kind, table, skip in (("model", MODELS, 1), ("degradation", DEGRADATIONS, 2)):
        for name, (function, text) in table.items():
            defaults = ",".join(f"{k}={v}" for k, v in _parameters(function, skip).items())
            rows.append((kind, f"{name}:{defaults}" if defaults else name, text))
    for module, syntax, text in ADAPTERS.values():
        opener = importlib.import_module(module).open_target
        params = {} if _takes_any_keyword(opener) else _parameters(opener, 1)
        defaults = ",".join(f"{k}={v}" for k, v in params.items())
        rows.append(("adapter", f"{syntax}#{defaults}" if defaults else syntax, text))
    return rows


def _takes_any_keyword(function: Callable[..., Any]) -> bool:
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        for p in inspect.signature(function).parameters.values()
    )


def _parse(part: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = part.partition(":")
    return name.strip(), _options(rest, part)


def _options(text: str, part: str) -> dict[str, str]:
    """``key=value`` items as raw text; :func:`_check_params` converts them."""
    params: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"malformed parameter {item!r} in {part!r}; expected key=value")
        params[key.strip().replace("-", "_")] = value.strip()
    return params


def _looks_like_options(text: str) -> bool:
    items = [s.strip() for s in text.split(",") if s.strip()]
    return bool(items) and all(
        re.fullmatch(r"[A-Za-z_][\w-]*=[^\s]*", item) is not None for item in items
    )


def _value(text: str) -> Any:
    """A guess at a value's type, for functions that take any keyword (``py:``)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parameters(function: Callable[..., Any], skip: int) -> dict[str, Any]:
    items = list(inspect.signature(function).parameters.values())[skip:]
    return {p.name: p.default for p in items}


def _check_params(
    function: Callable[..., Any], params: dict[str, str], part: str, skip: int
) -> dict[str, Any]:
    """Each raw value converted to the type of its parameter's default (str stays text)."""
    accepted = _parameters(function, skip)
    converted: dict[str, Any] = {}
    for key, text in params.items():
        if key not in accepted:
            listed = ", ".join(f"{k} (default {v})" for k, v in accepted.items()) or "none"
            raise ValueError(f"unknown parameter {key!r} in {part!r}; accepted: {listed}")
        default = accepted[key]
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"parameter {key}={text!r} in {part!r} must be true or false")
            converted[key] = text.lower() == "true"
        elif isinstance(default, (int, float)):
            value = _value(text)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"parameter {key}={text!r} in {part!r} must be a number")
            converted[key] = value
        elif isinstance(default, str):
            converted[key] = text
        else:
            converted[key] = _value(text)
    return converted


def _bind(function: Callable[..., np.ndarray], params: dict[str, Any]) -> Callable[..., np.ndarray]:
    def bound(*args: Any) -> np.ndarray:
        return function(*args, **params)

    bound.__name__ = function.__name__
    return bound


__all__ = [
    "ADAPTERS",
    "DEGRADATIONS",
    "MODELS",
    "SpecTarget",
    "Target",
    "describe",
    "load_target",
    "redact",
]
