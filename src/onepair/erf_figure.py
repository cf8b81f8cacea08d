"""The effective receptive field on paper and on disk: a log-scale heat map PNG, and the
map with its numbers as files (:mod:`onepair.erf` measures it)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from onepair import atomic
from onepair.erf import ErfResult


def save_heatmap(result: ErfResult, path: str | Path, title: str | None = None) -> Path:
    """The map as a PNG on a log10 colour scale (viridis) with a colour bar.

    Axes are offsets from the probed pixel in input pixels; the window shown
    reaches 4 ERF radii (at least 10 map pixels) from it, or the whole map. The
    probed pixel is marked with a white ``+`` and the ERF radius drawn as a red
    circle. Values below 1e-6 of the maximum show as the bottom colour.
    Needs matplotlib (``pip install matplotlib``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import LogNorm
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle
    except ImportError as error:
        raise ImportError("save_heatmap needs matplotlib: pip install matplotlib") from error
    erf, s = result.map, result.scale
    vmax = float(erf.max()) if erf.max() > 0 else 1.0
    positive = erf[erf > 0]
    vmin = max(float(positive.min()), vmax * 1e-6) if positive.size else vmax * 1e-6
    figure = Figure(figsize=(5.6, 4.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    cy = s * (erf.shape[0] // s // 2) + (s - 1) / 2  # the probed pixel, in map pixels
    cx = s * (erf.shape[1] // s // 2) + (s - 1) / 2
    half = max(10, math.ceil(4 * result.radius * s))  # window shown, in map pixels
    r0, r1 = max(0, math.floor(cy - half)), min(erf.shape[0], math.ceil(cy + half) + 1)
    c0, c1 = max(0, math.floor(cx - half)), min(erf.shape[1], math.ceil(cx + half) + 1)
    extent = ((c0 - 0.5 - cx) / s, (c1 - 0.5 - cx) / s, (r1 - 0.5 - cy) / s, (r0 - 0.5 - cy) / s)
    shown = axes.imshow(
        np.clip(erf[r0:r1, c0:c1], vmin, None),
        norm=LogNorm(vmin, vmax),
        cmap="viridis",
        interpolation="nearest",
        extent=extent,
    )
    figure.colorbar(shown, ax=axes, label="mean |output change| (log10 scale)")
    axes.plot([0], [0], marker="+", color="white", markersize=10)
    axes.add_patch(Circle((0, 0), result.radius, fill=False, color="red", linewidth=1.2))
    axes.set_xlabel("offset from the changed pixel (input pixels)")
    axes.set_title(
        title
        or f"{result.method} ERF: {result.mass:.0%} of the change within "
        f"{result.radius:.2f} input px",
        fontsize=10,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic.write_bytes(path, buffer.getvalue())


def write_erf(result: ErfResult, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``erf.png`` (heat map), ``erf.npy`` (the map) and ``erf.json``
    (:meth:`ErfResult.to_dict` with ``extra``) into ``folder``; returns the folder."""
    folder = Path(folder)
    save_heatmap(result, folder / "erf.png")
    buffer = io.BytesIO()
    np.save(buffer, result.map, allow_pickle=False)
    atomic.write_bytes(folder / "erf.npy", buffer.getvalue())
    record = {**(extra or {}), **result.to_dict(), "map": "erf.npy", "heatmap": "erf.png"}
    atomic.write_text(folder / "erf.json", json.dumps(record, indent=2) + "\n")
    return folder
