"""The panels of a published figure: their boxes, and a check for JPEG artefacts.

A box is ``(x, y, w, h)`` in figure pixels (:func:`parse_box` reads the
command line's ``x,y,w,h``; :func:`check_box` keeps it inside the figure).
:func:`blockiness` tells whether the figure went through JPEG, whose 8 x 8
block edges an imitator would learn. :mod:`onepair.figures` cuts the pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onepair.images import as_image, match_channels

Box = tuple[int, int, int, int]  # x, y, width, height in figure pixels

BLOCKINESS_THRESHOLD = 1.035  # calibrated in tests: clean photos <= 1.025, JPEG q75 >= 1.04


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` -> (x, y, w, h): integers, x and y >= 0, w and h > 0.

    >>> parse_box("10, 20, 160, 120")
    (10, 20, 160, 120)
    """
    parts = str(text).split(",")
    expected = "expected x,y,w,h: four integers in figure pixels, e.g. 10,20,160,160"
    if len(parts) != 4:
        raise ValueError(f"box {text!r} has {len(parts)} field(s); {expected}")
    try:
        x, y, w, h = (int(p.strip()) for p in parts)
    except ValueError:
        raise ValueError(f"box {text!r} holds a value that is not an integer; {expected}") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise ValueError(f"box {text!r}: x, y must be >= 0 and w, h > 0; {expected}")
    return x, y, w, h


def check_box(box: Sequence[int], figure: np.ndarray, name: str = "box") -> Box:
    """The box as a tuple, or an error saying the figure's size if it leaves the figure."""
    if len(box) != 4:
        raise ValueError(f"{name} is {tuple(box)}; expected (x, y, w, h)")
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"{name} {(x, y, w, h)} is empty; w and h must be > 0")
    height, width = figure.shape[:2]
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(
            f"{name} (x={x}, y={y}, w={w}, h={h}) spans x {x}..{x + w}, y {y}..{y + h}, "
            f"which leaves the figure: it is {width} pixels wide and {height} high"
        )
    return x, y, w, h


def blockiness(image: np.ndarray, smooth: float = 0.05) -> float:
    """JPEG 8x8 blockiness: about 1 for a clean image, above 1 where block edges show.

    On luminance, ``d[j]`` = |I[:, j+1] - I[:, j]|. Only differences that,
    with both neighbours ``d[j-1]`` and ``d[j+1]``, are below ``smooth`` count
    (smooth areas: frame lines, text and edges drop out; JPEG steps show best
    there). ``S_p`` is the mean counted ``d`` at column phase p = j mod 8; the
    statistic is the largest ``S_p`` over the second largest: any grid origin
    is found, and the period-2 or -4 pattern of an upscaled image ties and
    gives 1. Rows likewise; the result is the mean of both.
    Clean photographs (also upscaled ones) give at most 1.025, JPEG quality 75
    gives 1.04 (grass, the hardest texture) to 2 (tests calibrate the threshold).
    """
    gray = match_channels(as_image(image), 1)[:, :, 0].astype(np.float64)
    ratios = []
    for a in (gray, gray.T):
        d = np.abs(np.diff(a, axis=1))
        if d.shape[1] < 18:
            return 1.0
        inner = d[:, 1:-1]
        counted = (d[:, :-2] < smooth) & (inner < smooth) & (d[:, 2:] < smooth)
        phase = (np.arange(1, d.shape[1] - 1) % 8)[None, :].repeat(d.shape[0], axis=0)
        sums = np.bincount(phase[counted], weights=inner[counted], minlength=8)
        counts = np.bincount(phase[counted], minlength=8)
        means = sums / np.maximum(counts, 1)
        second, first = np.sort(means)[-2:]
        ratios.append(first / second if second > 1e-12 else 1.0)
    return float(np.mean(ratios))
