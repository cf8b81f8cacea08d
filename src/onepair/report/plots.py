"""The audit report's two figures, drawn by matplotlib (Agg) into PNG bytes in memory.

* :func:`fidelity_curve` -- copy fidelity (held-out PSNR, dB) against training time
  (s), one line per imitator, the identity floor dashed;
* :func:`tradeoff` -- what each defence costs the owner (PSNR of the published
  output against the true one, dB; higher = cheaper) against how well the copy
  still works (held-out PSNR, dB), the undefended copy dashed.

Both take the plain dicts of report.json (see :mod:`onepair.report`) and return
``None`` when there is nothing to draw. No pyplot: each call builds its own
:class:`matplotlib.figure.Figure`, so nothing global is touched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

WIDTH_IN, HEIGHT_IN, DPI = 7.5, 4.5, 150
NO_CHANGE_GAP = 5.0  # dB between the cheapest real cost and the "no change" column


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing, not a number, or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _figure() -> tuple[Any, Any]:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # a core dependency, but say so plainly if it is gone
        raise ImportError(
            "the audit report's plots need matplotlib: pip install 'matplotlib>=3.7'"
        ) from error
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _legend(ax: Any) -> None:
    """The legend below the axes, where it never hides a line."""
    count = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=min(count, 4), fontsize=8,
              frameon=False)  # fmt: skip


def _hline(ax: Any, y: float, label: str, colour: str, style: str) -> None:
    """A labelled horizontal reference line, its label written just above its right end."""
    ax.axhline(y, color=colour, linestyle=style, linewidth=1.2)
    ax.annotate(
        label, (1.0, y), xycoords=("axes fraction", "data"), xytext=(-4, 3),
        textcoords="offset points", ha="right", va="bottom", fontsize=8, color=colour,
    )  # fmt: skip


def fidelity_curve(imitators: Sequence[dict], floor_psnr: float | None) -> bytes | None:
    """Held-out PSNR (dB) against fit time (s), one line per imitator's ``curve``.

    An imitator without a curve but with ``fit_seconds`` and ``psnr`` is drawn as
    one point. ``floor_psnr`` (the identity floor) is a dashed horizontal line.
    Returns PNG bytes, or None when no imitator has a single point to draw.
    """
    lines = []
    for imitator in imitators:
        points = [
            (number(p.get("seconds")), number(p.get("psnr")))
            for p in imitator.get("curve") or []
            if isinstance(p, dict)
        ]
        points = [(x, y) for x, y in points if x is not None and y is not None]
        end = (number(imitator.get("fit_seconds")), number(imitator.get("psnr")))
        if not points and None not in end:
            points = [end]
        if points:
            lines.append((str(imitator.get("name", "?")), sorted(points)))
    if not lines:
        return None
    fig, ax = _figure()
    for name, points in lines:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.6, label=name)
    floor = number(floor_psnr)
    if floor is not None:
        _hline(ax, floor, "identity floor", "#555555", "--")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.set_xlim(left=0)
    _legend(ax)
    return _png(fig)


def strength(value: Any) -> str:
    """A defence strength as a short label: ``35.0`` -> ``"35"``, None -> ``""``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def tradeoff(
    defenses: Sequence[dict], recommended: int | None = None, floor_psnr: float | None = None
) -> bytes | None:
    """Copy fidelity (dB) against the owner's cost (dB), one series per defence kind.

    ``defenses`` are report.json's entries; the one with ``defense == "none"`` is
    the undefended copy, a dashed horizontal line. Entries whose ``cost_psnr`` is
    null (no change to the published output) sit in a "no change" column at the
    right edge, ``NO_CHANGE_GAP`` dB past the cheapest finite cost. Points are
    labelled with their strength; ``recommended`` (an index into ``defenses``)
    is ringed. ``floor_psnr``, when given, is a dotted line: a copy there learned
    nothing. Returns PNG bytes, or None when no entry has a copy fidelity.
    """
    costs = [number(d.get("cost_psnr")) for d in defenses]
    finite = [c for c in costs if c is not None]
    edge = (max(finite) + NO_CHANGE_GAP) if finite else 40.0
    series: dict[str, list[tuple[float, float, str, int]]] = {}
    undefended = None
    for index, (entry, cost) in enumerate(zip(defenses, costs, strict=True)):
        fidelity = number(entry.get("psnr"))
        if fidelity is None:
            continue
        kind = str(entry.get("defense", "?"))
        if kind == "none":
            undefended = fidelity
            continue
        x = edge if cost is None else cost
        series.setdefault(kind, []).append((x, fidelity, strength(entry.get("strength")), index))
    if not series and undefended is None:
        return None
    fig, ax = _figure()
    if undefended is not None:
        _hline(ax, undefended, "undefended copy", "#c62828", "--")
        ax.plot([edge], [undefended], marker="s", color="#c62828", markersize=6, linestyle="")
    floor = number(floor_psnr)
    if floor is not None:
        _hline(ax, floor, "identity floor", "#777777", ":")
    for kind, points in series.items():
        points.sort()
        labels = {defenses[i].get("label") for *_, i in points}
        name = str(labels.pop()) if len(points) == 1 and labels else kind
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        (line,) = ax.plot(xs, ys, marker="o", markersize=5, linewidth=1.4, label=name)
        for x, y, text, _ in points:
            ax.annotate(
                text, (x, y), xytext=(10, 6), textcoords="offset points",
                fontsize=7.5, color=line.get_color(),
            )  # fmt: skip
    if recommended is not None:
        for x, y, _, index in (p for points in series.values() for p in points):
            if index == recommended:
                ax.plot([x], [y], marker="o", markersize=13, markerfacecolor="none",
                        markeredgecolor="#2e7d32", markeredgewidth=2, linestyle="")  # fmt: skip
                ax.annotate(
                    "recommended", (x, y), xytext=(0, -20), textcoords="offset points",
                    ha="center", fontsize=8, color="#2e7d32", fontweight="bold",
                )  # fmt: skip
    _no_change_axis(ax, finite, edge)
    ax.set_xlabel("cost to owner: PSNR of published vs true output (dB, higher = cheaper)")
    ax.set_ylabel("copy fidelity: held-out PSNR (dB)")
    if series:
        _legend(ax)
    return _png(fig)


def _no_change_axis(ax: Any, finite: list[float], edge: float) -> None:
    """Ticks up to the largest finite cost, then a broken axis and a "no change" column."""
    low = min(finite) if finite else edge - NO_CHANGE_GAP
    ax.set_xlim(low - 2.0, edge + 2.0)
    ticks = [t for t in ax.get_xticks() if low - 2.0 <= t <= edge - NO_CHANGE_GAP / 2]
    ax.set_xticks([*ticks, edge], [f"{t:g}" for t in ticks] + ["no change"])
    if finite:
        gap = edge - NO_CHANGE_GAP / 2
        ax.axvline(gap, color="#999999", linestyle=(0, (1, 3)), linewidth=1)
        ax.annotate(
            "//", (gap, 0), xycoords=("data", "axes fraction"), ha="center", va="center",
            fontsize=10, color="#555555", annotation_clip=False,
        )  # fmt: skip
