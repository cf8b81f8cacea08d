"""Fidelity of an imitator against the real target on images other than the example.

For each clean image: the target's degradation front end (if any) makes the
input, the target and the imitator each map it, and PSNR/SSIM compare the two
outputs. Beside them stands the floor (DESIGN.md): the input itself (bicubic
up-scaled for a scale change) against the target's output.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from onepair import atomic, determinism
from onepair.images import as_image, match_channels
from onepair.imitator import Imitator
from onepair.metrics import psnr, ssim
from onepair.pairs import baseline
from onepair.samples import read
from onepair.targets import SpecTarget, load_target
from onepair.tiling import resolve_precision


@dataclass
class Row:
    image: str
    psnr: float
    ssim: float
    floor_psnr: float | None
    floor_ssim: float | None


@dataclass
class Evaluation:
    """Per-image rows and their means; ``queries``/``pixels`` the target was asked."""

    target: str
    rows: list[Row]
    queries: int = 0
    pixels: int = 0
    deterministic: bool | None = None  # None: not checked
    nondeterminism_psnr: float | None = None  # dB between two answers to one input; inf: equal
    precision: str = "float32"  # what the imitator's body computed in
    outputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    def mean(self, key: str) -> float | None:
        values = [getattr(r, key) for r in self.rows if getattr(r, key) is not None]
        return float(np.mean(values)) if values else None

    def std(self, key: str) -> float | None:
        values = [getattr(r, key) for r in self.rows if getattr(r, key) is not None]
        return float(np.std(values)) if values else None

    def summary(self) -> dict[str, object]:
        return {
            "target": self.target,
            "images": len(self.rows),
            **{f"{k}_mean": self.mean(k) for k in ("psnr", "ssim", "floor_psnr", "floor_ssim")},
            "psnr_std": self.std("psnr"),
            "target_queries": self.queries,
            "target_pixels": self.pixels,
            "deterministic": self.deterministic,
            "nondeterminism_psnr": self.nondeterminism_psnr,
            "precision": self.precision,
        }

    def write(self, folder: str | Path, stem: str = "eval") -> tuple[Path, Path]:
        """``stem.json`` (summary and rows) and ``stem.csv`` (rows) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
        rows = [asdict(r) for r in self.rows]
        atomic.write_text(
            json_path,
            json.dumps({"summary": self.summary(), "rows": rows}, indent=2, default=_json_number)
            + "\n",
        )
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=list(rows[0]) if rows else ["image"])
        writer.writeheader()
        writer.writerows(rows)
        atomic.write_text(csv_path, table.getvalue())
        return json_path, csv_path


def _json_number(value: object) -> object:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    raise TypeError(f"cannot serialise {value!r}")


def evaluate(
    imitator: Imitator,
    target: str | SpecTarget,
    images: Sequence[str | np.ndarray],
    names: Sequence[str] | None = None,
    seed: int = 1,
    tile: int | str | None = "auto",
    keep_outputs: bool = False,
    on_image: Callable[[int, int], None] | None = None,
    check_determinism: bool = False,
    precision: str = "auto",
) -> Evaluation:
    """PSNR/SSIM of ``imitator`` vs ``target`` on ``images`` (paths, ``builtin:NAME`` or arrays).

    Gray images are repeated to the imitator's channels and colour ones
    converted to gray where it takes one channel. ``seed`` drives the
    target's degradations (noise), so every run sees the same inputs. ``precision``:
    what the imitator's body computes in, as in :meth:`Imitator.apply`.
    """
    computes = str(resolve_precision(precision, imitator.device)).removeprefix("torch.")
    target = load_target(target) if isinstance(target, str) else target
    if not images:
        raise ValueError("no images to evaluate on; pass files or builtin:NAME references")
    queries0, pixels0 = target.queries, target.pixels
    evaluation = Evaluation(target.spec, [], precision=computes)
    for i, source in enumerate(images):
        name = names[i] if names else (source if isinstance(source, str) else f"image{i}")
        clean = read(source) if isinstance(source, str) else as_image(source)
        x = model_input(target, clean, imitator.in_channels, seed, str(name))
        y = target(x)
        if y.shape[2] != imitator.out_channels or y.shape[0] != x.shape[0] * imitator.scale:
            raise ValueError(
                f"target output for {name} is {y.shape}, imitator gives "
                f"{imitator.scale}x size with {imitator.out_channels} channels: "
                "was the imitator fitted on this target?"
            )
        if check_determinism and i == 0:
            found = determinism.check_determinism(target, x, answer=y)
            evaluation.deterministic = found.deterministic
            evaluation.nondeterminism_psnr = found.psnr
        z = imitator.apply(x, tile=tile, precision=precision)
        base = baseline(x, y)
        evaluation.rows.append(
            Row(
                str(name),
                psnr(z, y),
                ssim(z, y),
                psnr(base, y) if base is not None else None,
                ssim(base, y) if base is not None else None,
            )
        )
        if keep_outputs:
            evaluation.outputs[str(name)] = (x, y, z)
        if on_image is not None:
            on_image(i + 1, len(images))
    evaluation.queries = target.queries - queries0
    evaluation.pixels = target.pixels - pixels0
    return evaluation


def model_input(
    target: SpecTarget, clean: np.ndarray, channels: int, seed: int, name: str
) -> np.ndarray:
    """The target's input made from ``clean``, with the imitator's channel count.

    Degradations normally keep channels, so the clean image is matched first
    (gray photographs repeated to RGB, colour to gray). A degradation that
    makes the channels itself (``hematoxylin|teacher-stain``: RGB slide -> one
    stain) gets the image as it is, when that gives the imitator's channels.
    """
    if target.degradations and clean.shape[2] != channels:
        try:
            x = target.degrade(clean, seed)
        except ValueError:
            x = None
        if x is not None and x.shape[2] == channels:
            return x
    return target.degrade(match_channels(clean, channels, name), seed)
