"""Black boxes to imitate, named by spec strings.

A target is anything with ``__call__(image) -> image`` in the image convention
(:class:`Target`). :func:`load_target` turns a spec into one using the literal
tables below -- the only place names are resolved. A spec is
``name:key=value,key=value``; degradations in front of the model are joined
with ``|``: ``noise:sigma=25|tv-denoise:weight=0.1`` means "the model
tv-denoise, applied to images with Gaussian noise of sigma 25 added".
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from onepair.images import as_image
from onepair.targets import classical, degrade

# name -> (function, one-line description)
MODELS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "identity": (classical.identity, "returns its input (a control)"),
    "gaussian-blur": (classical.gaussian_blur, "Gaussian blur, sigma in pixels (linear)"),
    "unsharp": (classical.unsharp, "unsharp-mask sharpening, clipped (near-linear)"),
    "tv-denoise": (classical.tv_denoise, "total-variation denoising, Chambolle"),
    "bilateral": (classical.bilateral, "bilateral edge-preserving filter"),
    "median": (classical.median, "median filter, size x size window"),
    "nl-means": (classical.nl_means, "non-local means denoising"),
}

# name -> (function(image, rng, **params), one-line description)
DEGRADATIONS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "noise": (degrade.noise, "additive Gaussian noise, sigma on the 0..255 scale, seeded"),
}


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
        return as_image(self.model(image), f"output of {self.spec}")

    def degrade(self, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """The model's input made from ``image``; the seed is mixed with the image's content."""
        image = as_image(image)
        digest = zlib.crc32(np.ascontiguousarray(image[::7, ::7]).tobytes())
        rng = np.random.default_rng([seed, digest])
        for step in self.degradations:
            image = step(image, rng)
        return image


def load_target(spec: str | Callable[[np.ndarray], np.ndarray]) -> SpecTarget:
    """Parse a spec string (or wrap a callable) into a :class:`SpecTarget`.

    >>> load_target("gaussian-blur:sigma=1.5")(np.zeros((8, 8, 1))).shape
    (8, 8, 1)
    """
    if callable(spec):
        name = getattr(spec, "__name__", type(spec).__name__)
        return SpecTarget(f"py:{name}", spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"target spec is {spec!r}; expected a string like 'gaussian-blur:sigma=2'")
    parts = [p.strip() for p in spec.split("|")]
    steps = []
    for part in parts[:-1]:
        name, params = _parse(part)
        if name not in DEGRADATIONS:
            raise ValueError(
                f"{part!r} in target spec {spec!r}: before '|' come degradations; "
                f"known: {', '.join(DEGRADATIONS)}"
            )
        function = DEGRADATIONS[name][0]
        _check_params(function, params, part, skip=2)
        steps.append(_bind(function, params))
    name, params = _parse(parts[-1])
    if name not in MODELS:
        hint = (
            " (a degradation needs a model after it: 'noise:sigma=25|tv-denoise')"
            if name in DEGRADATIONS
            else ""
        )
        raise ValueError(
            f"unknown target {name!r} in spec {spec!r}{hint}; known targets: "
            f"{', '.join(MODELS)}; degradations to put in front with '|': "
            f"{', '.join(DEGRADATIONS)}"
        )
    function = MODELS[name][0]
    _check_params(function, params, parts[-1], skip=1)
    return SpecTarget(spec, _bind(function, params), steps)


def describe() -> list[tuple[str, str, str]]:
    """(kind, name with default parameters, description) for every known name."""
    rows = []
    for kind, table, skip in (("model", MODELS, 1), ("degradation", DEGRADATIONS, 2)):
        for name, (function, text) in table.items():
            defaults = ",".join(f"{k}={v}" for k, v in _parameters(function, skip).items())
            rows.append((kind, f"{name}:{defaults}" if defaults else name, text))
    return rows


def _parse(part: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = part.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"malformed parameter {item!r} in {part!r}; expected key=value")
        params[key.strip().replace("-", "_")] = _value(value.strip())
    return name.strip(), params


def _value(text: str) -> Any:
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
    function: Callable[..., Any], params: dict[str, Any], part: str, skip: int
) -> None:
    accepted = _parameters(function, skip)
    for key, value in params.items():
        if key not in accepted:
            listed = ", ".join(f"{k} (default {v})" for k, v in accepted.items()) or "none"
            raise ValueError(f"unknown parameter {key!r} in {part!r}; accepted: {listed}")
        default = accepted[key]
        if (
            isinstance(default, (int, float))
            and not isinstance(default, bool)
            and (isinstance(value, bool) or not isinstance(value, (int, float)))
        ):
            raise ValueError(f"parameter {key}={value!r} in {part!r} must be a number")
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"parameter {key}={value!r} in {part!r} must be true or false")


def _bind(function: Callable[..., np.ndarray], params: dict[str, Any]) -> Callable[..., np.ndarray]:
    def bound(*args: Any) -> np.ndarray:
        return function(*args, **params)

    bound.__name__ = function.__name__
    return bound


__all__ = ["DEGRADATIONS", "MODELS", "SpecTarget", "Target", "describe", "load_target"]
