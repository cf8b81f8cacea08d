"""Cut an example pair out of a published figure (DESIGN.md, user 3).

A paper or brochure often shows a model's input and output side by side. The
user draws a rough box around each panel; :func:`extract` turns the two crops
into a pair whose pixels correspond:

1. crop both panels (``Box = (x, y, w, h)`` in figure pixels);
2. the scale ``k`` (1..8) is the box-size ratio rounded; when the ratio is
   further than ``scale_tolerance`` from ``k``, the output panel is also
   resampled to exactly ``k`` times the input's size, and whichever version
   registers better (luminance correlation) is kept: sloppy boxes keep the
   panel as it is, a panel shown resampled is resampled back, with a warning;
3. the input panel is brought to the output's scale (bicubic) and both to
   luminance; sub-pixel phase correlation (Hann window, upsampled DFT, the
   cross-power spectrum divided by the square root of its magnitude: pure
   phase correlation lets the noise in a blurred panel's empty high
   frequencies pull the peak) gives the offset of the output panel. After a
   first trim (step 4) the clean parts are registered again, free of the
   labels' and frames' pull; cubic-spline interpolation undoes the offset
   (none when it is within ``snap`` of an integer);
4. trimming keeps the largest axis-aligned rectangle free of (a) rows and
   columns lost to the offset, (b) near-uniform rows and columns at the
   panel edges (white gutters, frame lines) and (c) pixels in the edge band
   (a fifth of the size) where the output is badly predicted from the input:
   a 5x5 linear filter per channel pair, fitted by robust least squares,
   explains a blur, a sharpening or a colour map, not text labels, arrows or
   frames drawn on one panel. Labels in a panel's middle are not looked for;
5. warnings (also logged to "onepair"): JPEG blockiness, a crop smaller than
   the receptive field, a large residual (maybe not the same image), a
   non-integer scale.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onepair.images import as_image, load_image, match_channels, save_image
from onepair.pairs import Pair
from onepair.panels import BLOCKINESS_THRESHOLD, Box, blockiness, check_box, parse_box
from onepair.registration import register, shift_panel, trim, valid_span

log = logging.getLogger("onepair")

RESIDUAL_WARNING = 0.5  # R^2 of the linear prediction below this: maybe not the same image


@dataclass
class Extracted:
    """A pair cut from a figure, with how it was cut.

    ``input`` is (h, w, Ci) and ``output`` (k*h, k*w, Co), in the image
    convention. ``shift`` (dy, dx) is where, in output-panel pixels, the
    output crop shows the input crop's origin (``output_crop[y + dy, x + dx]``
    corresponds to ``input_crop[y, x]`` times k), as measured;
    ``shift_applied`` is what was undone (snapped to integers when close).
    ``input_box`` and ``output_box`` are the kept regions in figure pixels
    (the output's rounded for a fractional shift or a resampled panel);
    ``r2`` is the share of the output's variance the linear prediction explains.
    """

    input: np.ndarray
    output: np.ndarray
    scale: int
    shift: tuple[float, float]
    shift_applied: tuple[float, float]
    input_box: Box
    output_box: Box
    measured_scale: float
    blockiness: float
    r2: float
    warnings: list[str] = field(default_factory=list)

    @property
    def pair(self) -> Pair:
        return Pair.of(self.input, self.output)

    def details(self) -> dict[str, object]:
        """What ``extract.json`` holds: boxes, shift, scale, measures, warnings."""
        return {
            "input_box": list(self.input_box),
            "output_box": list(self.output_box),
            "input_shape": list(self.input.shape),
            "output_shape": list(self.output.shape),
            "scale": self.scale,
            "measured_scale": round(self.measured_scale, 4),
            "shift": [round(s, 3) for s in self.shift],
            "shift_applied": [round(s, 3) for s in self.shift_applied],
            "blockiness": round(self.blockiness, 4),
            "r2": round(self.r2, 4),
            "warnings": self.warnings,
        }

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write ``input.png``, ``output.png`` (16-bit) and ``extract.json`` to ``out_dir``."""
        out = Path(out_dir)
        save_image(out / "input.png", self.input, bit_depth=16)
        save_image(out / "output.png", self.output, bit_depth=16)
        tmp = out / f".extract.json.tmp{os.getpid()}"
        tmp.write_text(json.dumps(self.details(), indent=2) + "\n")
        os.replace(tmp, out / "extract.json")
        return out


def extract(
    figure: np.ndarray,
    input_box: Sequence[int],
    output_box: Sequence[int],
    receptive_field: int = 31,
    max_scale: int = 8,
    scale_tolerance: float = 0.04,
    upsample_factor: int = 50,
    snap: float = 0.1,
    gray: bool | None = None,
) -> Extracted:
    """Cut a registered, trimmed input/output pair out of ``figure`` (H, W, C) in [0, 1].

    A measured shift within ``snap`` pixels of an integer is applied as that
    integer (no interpolation: registration is this accurate anyway), and
    ``Extracted.shift`` is the one measured. ``gray=None`` stores a panel
    whose colour channels agree (within 4/255) as one channel;
    ``True``/``False`` forces it. Raises ``ValueError`` for a
    box outside the figure or when nothing clean is left.

    >>> figure = load_image("fig2.png")  # doctest: +SKIP
    >>> extract(figure, (12, 40, 256, 256), (290, 40, 256, 256)).save("pair/")  # doctest: +SKIP
    """
    figure = as_image(figure, "figure")
    figure = figure[:, :, :3] if figure.shape[2] == 4 else figure  # drop alpha
    ix, iy, iw, ih = check_box(input_box, figure, "input box")
    ox, oy, ow, oh = check_box(output_box, figure, "output box")
    warnings: list[str] = []
    x = figure[iy : iy + ih, ix : ix + iw]
    y = figure[oy : oy + oh, ox : ox + ow]

    ratio = math.sqrt((oh / ih) * (ow / iw))
    k = int(min(max(round(ratio), 1), max_scale))
    offset, score = register(x, y, k, upsample_factor)
    resampled = abs(ratio / k - 1.0) > scale_tolerance
    if resampled:  # a resampled panel, or only sloppy boxes? the better registration decides
        from skimage.transform import rescale

        y2 = rescale(y, k / ratio, order=3, channel_axis=-1, anti_aliasing=k < ratio)
        y2 = np.clip(y2, 0.0, 1.0).astype(np.float32)
        offset2, score2 = register(x, y2, k, upsample_factor)
        resampled = score2 > score
        if resampled:
            y, offset = y2, offset2
            warnings.append(
                f"the output panel is shown {ratio:.3f} times the input's size, not an integer "
                f"factor: it was resampled to {k}x; resampling blurs it, so the fit learns that too"
            )
    applied = np.where(np.abs(offset - np.round(offset)) <= snap, np.round(offset), offset)
    rows, cols = valid_span(applied, y.shape[:2], k, (ih, iw))
    (r0, r1), (c0, c1), r2 = trim(x, shift_panel(y, applied, (k * ih, k * iw)), k, rows, cols)
    # second pass: labels, frames and gutters biased the first; register the clean parts
    dy, dx = (int(v) for v in np.round(offset))
    part = y[k * r0 + dy : k * r1 + dy, k * c0 + dx : k * c1 + dx]
    inside = min(k * r0 + dy, k * c0 + dx) >= 0 and min(r1 - r0, c1 - c0) >= 16
    if inside and part.shape[:2] == (k * (r1 - r0), k * (c1 - c0)):
        offset = np.array([dy, dx]) + register(x[r0:r1, c0:c1], part, k, upsample_factor)[0]
        applied = np.where(np.abs(offset - np.round(offset)) <= snap, np.round(offset), offset)
        (a0, a1), (b0, b1) = valid_span(applied, y.shape[:2], k, (ih, iw))
        r0, r1, c0, c1 = max(r0, a0), min(r1, a1), max(c0, b0), min(c1, b1)
    y = shift_panel(y, applied, (k * ih, k * iw))
    x, y = x[r0:r1, c0:c1], y[k * r0 : k * r1, k * c0 : k * c1]
    if gray is not False:
        x, y = _maybe_gray(x, force=gray), _maybe_gray(y, force=gray)

    block = blockiness(figure)
    if block > BLOCKINESS_THRESHOLD:
        warnings.append(
            f"the figure shows JPEG compression (8x8 blockiness {block:.2f} > "
            f"{BLOCKINESS_THRESHOLD}): the imitator may learn its artefacts; use a lossless "
            "source (PDF, PNG) if there is one"
        )
    if min(r1 - r0, c1 - c0) < receptive_field:
        warnings.append(
            f"the clean crop is {r1 - r0}x{c1 - c0} input pixels, smaller than the receptive "
            f"field {receptive_field}x{receptive_field}: too little to learn the model from"
        )
    if r2 < RESIDUAL_WARNING:
        warnings.append(
            f"after registration a linear filter explains only {100 * max(r2, 0):.0f}% of the "
            "output's variance: the panels may not show the same image, or the boxes are off"
        )
    for message in warnings:
        log.warning("extract: %s", message)
    scale_y, scale_x = (oh / (k * ih), ow / (k * iw)) if resampled else (1.0, 1.0)
    out_box = (
        int(round(ox + (k * c0 + applied[1]) * scale_x)),
        int(round(oy + (k * r0 + applied[0]) * scale_y)),
        int(round(k * (c1 - c0) * scale_x)),
        int(round(k * (r1 - r0) * scale_y)),
    )
    return Extracted(
        input=x,
        output=y,
        scale=k,
        shift=(float(offset[0]), float(offset[1])),
        shift_applied=(float(applied[0]), float(applied[1])),
        input_box=(ix + c0, iy + r0, c1 - c0, r1 - r0),
        output_box=out_box,
        measured_scale=ratio,
        blockiness=block,
        r2=r2,
        warnings=warnings,
    )


def _maybe_gray(image: np.ndarray, force: bool | None) -> np.ndarray:
    """One channel (luminance) when forced, or when the RGB channels agree within 4/255."""
    if image.shape[2] != 3:
        return image
    spread = image.max(axis=2) - image.min(axis=2)
    if force or (force is None and np.percentile(spread, 99) < 4 / 255):
        return match_channels(image, 1)
    return image


def extract_many(
    figure: np.ndarray, boxes: Sequence[tuple[Sequence[int], Sequence[int]]], **options: object
) -> list[Extracted]:
    """:func:`extract` for several (input_box, output_box) pairs of one figure."""
    return [extract(figure, a, b, **options) for a, b in boxes]  # type: ignore[arg-type]


def extract_figure(
    path: str | os.PathLike,
    input_boxes: Sequence[Sequence[int] | str],
    output_boxes: Sequence[Sequence[int] | str],
    out_dir: str | os.PathLike,
    receptive_field: int = 31,
) -> list[Extracted]:
    """Load a figure, extract each box pair, save to ``out_dir`` (one pair) or
    ``out_dir/pair-1``, ``pair-2``, ... (several); boxes may be ``"x,y,w,h"`` strings."""
    if len(input_boxes) != len(output_boxes) or not input_boxes:
        raise ValueError(
            f"{len(input_boxes)} input box(es) and {len(output_boxes)} output box(es); "
            "give one --output-box for each --input-box (at least one of each)"
        )
    figure = load_image(path)
    parsed = [
        (parse_box(a) if isinstance(a, str) else a, parse_box(b) if isinstance(b, str) else b)
        for a, b in zip(input_boxes, output_boxes, strict=True)
    ]
    results = extract_many(figure, parsed, receptive_field=receptive_field)
    out = Path(out_dir)
    for i, result in enumerate(results):
        result.save(out if len(results) == 1 else out / f"pair-{i + 1}")
    return results
