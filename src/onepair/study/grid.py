"""Study grids: a TOML file of fixed settings and factors, expanded into cells.

A grid names every setting of a cell (:data:`SETTINGS`) either once, under
``[study]``, or as a list of levels, under ``[factors]``; the cells are the
product of the factors' levels, each with the fixed settings. ``[full]``
holds overrides for a full-size run (``onepair study run --full``), so one
file serves this 2-core machine and a GPU or a cluster::

    [study]
    target = "noise:sigma=25|tv-denoise"
    architecture = "plain"
    seconds = 30

    [factors]
    receptive_field = [3, 7, 15, 31]
    seed = [0, 1]

    [full]
    seconds = 300

Everything is checked before any work: unknown tables or keys, wrong
types, values out of range, targets that do not load (and teachers that are
not trained), each error naming the offending key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ARCHITECTURES = ("unet", "plain", "attention")


def _choice(*allowed: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"one of {', '.join(map(repr, allowed))}"

    return check


def _int(low: int, high: int | None = None, odd: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        ok = ok and (high is None or value <= high) and (not odd or value % 2 == 1)
        span = f">= {low}" if high is None else f"{low}..{high}"
        return None if ok else f"an {'odd ' if odd else ''}integer {span}"

    return check


def _number(low: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > low
        return None if ok else f"a number > {low:g}"

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _images(value: Any) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    return None if ok else "a non-empty list of image references (files or builtin:NAME)"


# setting -> (default, check returning what is expected when the value is wrong, meaning)
SETTINGS: dict[str, tuple[Any, Callable[[Any], str | None], str]] = {
    "target": (None, _text, "the black box: a target spec (see `onepair targets`)"),
    "degradation": ("", _text, "degradations put in front of the target, e.g. noise:sigma=15"),
    "target_architecture": ("", _choice("", *ARCHITECTURES), "a teacher target's architecture"),
    "target_loss": (
        "",
        _choice("", "l2", "l1", "perceptual", "adversarial"),
        "a teacher target's training loss",
    ),
    "example": ("builtin:astronaut", _text, "the image that makes the one pair"),
    "example_size": (128, _int(16), "central crop of the example, pixels"),
    "held_out": (
        ["builtin:coffee", "builtin:chelsea", "builtin:rocket", "builtin:camera"],
        _images,
        "images the copy is measured on",
    ),
    "held_out_size": (128, _int(16), "central crop of each held-out image"),
    "architecture": ("plain", _choice(*ARCHITECTURES), "the imitator's architecture"),
    "receptive_field": (31, _int(3, odd=True), "plain imitator's receptive field"),
    "width": (32, _int(1), "imitator channels (at full resolution)"),
    "depth": (3, _int(1, 6), "U-Net resolutions"),
    "unshuffle": (1, _int(1, 4), "U-Net space-to-depth factor (its body runs at 1/f size)"),
    "blocks": (4, _int(1), "attention blocks"),
    "skip": ("linear", _choice("linear", "identity", "none"), "the imitator's skip path"),
    "linear_kernel": (15, _int(1, odd=True), "linear path size (at most the receptive field)"),
    "loss": ("l2", _choice("l2", "l1"), "the imitator's training loss"),
    "seconds": (30.0, _number(0), "fit budget in seconds"),
    "steps": (10**9, _int(1), "fit budget in steps"),
    "crop": (48, _int(8), "training crop side"),
    "batch_size": (8, _int(1), "training batch size"),
    "lr": (2e-3, _number(0), "peak learning rate"),
    "seed": (0, _int(0), "seed of the noise, the crops and the initial weights"),
}
TABLES = ("study", "factors", "full")


@dataclass(frozen=True)
class Cell:
    """One point of a grid: every setting, and a key that names it in the store."""

    settings: dict[str, Any]

    @property
    def key(self) -> str:
        text = json.dumps(self.settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Grid:
    """Fixed settings and factors (setting -> levels), in file order."""

    fixed: dict[str, Any]
    factors: dict[str, list[Any]]
    source: str = "grid"

    def cells(self) -> list[Cell]:
        names = list(self.factors)
        return [
            Cell({**self.fixed, **dict(zip(names, levels, strict=True))})
            for levels in itertools.product(*(self.factors[n] for n in names))
        ]


def load_grid(path: str | Path, full: bool = False, check_targets: bool = True) -> Grid:
    """Read and check the grid file ``path`` (``full``: apply its ``[full]`` table)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"grid file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    return parse_grid(data, str(path), full, check_targets)


def parse_grid(
    data: dict[str, Any], source: str = "grid", full: bool = False, check_targets: bool = True
) -> Grid:
    """The :class:`Grid` of a parsed TOML document; every error names its key.

    ``[full]`` overrides a fixed setting with a value, a factor with a list of levels;
    it is checked whether or not ``full`` applies it.
    """
    for table in data:
        if table not in TABLES:
            raise ValueError(f"{source}: unknown table [{table}]; allowed: {', '.join(TABLES)}")
    study, factors = dict(data.get("study", {})), dict(data.get("factors", {}))
    for key in study:
        if key in factors:
            raise ValueError(f"{source}: {key} is both fixed in [study] and a factor")
    for key, value in study.items():
        _check(source, f"study.{key}", key, value)
    for key, levels in factors.items():
        _levels(source, f"factors.{key}", key, levels)
    for key, value in data.get("full", {}).items():
        if key in factors:
            _levels(source, f"full.{key}", key, value)
        else:
            _check(source, f"full.{key}", key, value)
        if full:
            (factors if key in factors else study)[key] = value
    fixed = {k: default for k, (default, _, _) in SETTINGS.items() if k not in factors}
    fixed.update(study)
    if "target" not in factors and not fixed.get("target"):
        raise ValueError(f"{source}: no target: set study.target or factors.target")
    grid = Grid(fixed, factors, source)
    if check_targets:
        _check_targets(grid)
    return grid


def _levels(source: str, where: str, key: str, levels: Any) -> None:
    if key not in SETTINGS:
        _unknown(source, where, key)
    if not isinstance(levels, list) or not levels:
        raise ValueError(f"{source}: {where} must be a non-empty list of levels; got {levels!r}")
    if len(set(map(json.dumps, levels))) != len(levels):
        raise ValueError(f"{source}: {where} repeats a level: {levels}")
    for i, level in enumerate(levels):
        _check(source, f"{where}[{i}]", key, level)


def _unknown(source: str, where: str, key: str) -> None:
    raise ValueError(f"{source}: unknown setting {where}; known: {', '.join(SETTINGS)}")


def _check(source: str, where: str, key: str, value: Any) -> None:
    if key not in SETTINGS:
        _unknown(source, where, key)
    _, check, _ = SETTINGS[key]
    expected = check(value)
    if expected is not None:
        raise ValueError(f"{source}: {where} is {value!r}; expected {expected}")


def target_spec(settings: dict[str, Any]) -> str:
    """The full spec of a cell's target: degradations, the target, a teacher's options."""
    spec = settings["target"]
    options = [
        f"{name}={settings[key]}"
        for name, key in (("architecture", "target_architecture"), ("loss", "target_loss"))
        if settings.get(key)
    ]
    if options:
        spec += (":" if ":" not in spec.rsplit("|", 1)[-1] else ",") + ",".join(options)
    degradation = settings.get("degradation")
    return f"{degradation}|{spec}" if degradation else spec


def _check_targets(grid: Grid) -> None:
    """Load every target spec of the grid (nothing runs); teachers must be trained."""
    from onepair.targets import load_target

    seen = set()
    for cell in grid.cells():
        spec = target_spec(cell.settings)
        if spec in seen:
            continue
        seen.add(spec)
        try:
            load_target(spec)
        except (ValueError, FileNotFoundError) as error:
            raise ValueError(f"{grid.source}: target {spec!r}: {error}") from None
        model = spec.rsplit("|", 1)[-1]
        if model.startswith("teacher-"):
            _check_teacher(grid.source, spec, model)


def _check_teacher(source: str, spec: str, model: str) -> None:
    from onepair.teachers import teacher_dir

    name, _, options = model.partition(":")
    params = dict(p.split("=", 1) for p in options.split(",") if "=" in p)
    folder = teacher_dir(
        name.removeprefix("teacher-"), params.get("architecture", "unet"), params.get("loss")
    )
    if not (folder / "weights.safetensors").is_file():
        raise ValueError(
            f"{source}: target {spec!r} needs a trained teacher in {folder}: run "
            f"`onepair zoo train-teacher {name.removeprefix('teacher-')} -o {folder}`"
            + "".join(f" --{k} {v}" for k, v in params.items())
        )
