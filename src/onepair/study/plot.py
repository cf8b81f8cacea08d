"""The paper's Fig. 3 analogues from a study's rows: PSNR against one setting.

One line per combination of the other factors (the target, usually), the
mean over seeds at each x with the seeds' standard deviation as error bars;
the x axis may also be a result column such as ``num_params``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onepair import atomic

LABELS = {
    "psnr": "held-out PSNR of the copy (dB)",
    "ssim": "held-out SSIM of the copy",
    "receptive_field": "imitator receptive field (px)",
    "imitator_receptive_field": "imitator receptive field (px)",
    "num_params": "imitator parameters",
    "example_size": "example size (px)",
    "width": "imitator width (channels)",
}


def series(
    rows: Sequence[dict[str, Any]], x: str, factors: Sequence[str], y: str = "psnr"
) -> dict[str, list[tuple[float, float, float, int]]]:
    """line label -> sorted ``(x, mean y, std y over seeds, seeds)``; lines differ in the
    factors other than ``x`` and ``seed``."""
    if rows and x not in rows[0]:
        raise ValueError(f"no column {x!r} in the study; columns: {', '.join(rows[0])}")
    others = [f for f in factors if f not in (x, "seed", "target") and not _follows(rows, f, x)]
    points: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        label = " ".join([_short(row["target"])] + [f"{f}={row[f]}" for f in others])
        points[label][row[x]].append(row[y])
    return {
        label: sorted(
            ((_number(at), float(np.mean(v)), float(np.std(v)), len(v)) for at, v in by_x.items()),
            key=lambda point: _order(point[0], rows, x),
        )
        for label, by_x in points.items()
    }


def _follows(rows: Sequence[dict[str, Any]], factor: str, x: str) -> bool:
    """Whether ``x`` (a result column such as ``num_params``) tells ``factor``'s level:
    then the factor is the x axis itself, not a separate line."""
    levels: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        levels[json.dumps(row[x])].add(json.dumps(row[factor]))
    return all(len(v) == 1 for v in levels.values())


def markdown_table(
    rows: Sequence[dict[str, Any]], x: str, factors: Sequence[str], y: str = "psnr"
) -> str:
    """The :func:`series` as a Markdown table: one row per line, one column per x,
    ``mean ± std (seeds)``."""
    lines = series(rows, x, factors, y)
    xs = sorted({p[0] for line in lines.values() for p in line}, key=lambda v: _order(v, rows, x))
    head = f"| {x} \u2192 | " + " | ".join(_text(v) for v in xs) + " |"
    out = [head, "|---|" + "---:|" * len(xs)]
    for label, line in lines.items():
        at = {p[0]: p for p in line}
        cells = [f"{at[v][1]:.2f} \u00b1 {at[v][2]:.2f}" if v in at else "" for v in xs]
        escaped = label.replace("|", "\\|")  # a spec's pipes would split the cell
        out.append(f"| `{escaped}` | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _number(value: Any) -> float | str:
    """A level as a float when it is a number, as text otherwise (architectures)."""
    return float(value) if isinstance(value, int | float) else str(value)


def _order(value: float | str, rows: Sequence[dict[str, Any]], x: str) -> tuple:
    """Numbers ascending; text in the order the rows first show it."""
    if isinstance(value, float):
        return (0, value)
    seen = list(dict.fromkeys(str(row[x]) for row in rows))
    return (1, seen.index(value) if value in seen else len(seen))


def _text(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else value


def _short(spec: str) -> str:
    return spec if len(spec) <= 40 else spec[:37] + "..."


def plot(
    rows: Sequence[dict[str, Any]],
    x: str,
    factors: Sequence[str],
    out: str | Path,
    y: str = "psnr",
    title: str | None = None,
) -> Path:
    """Draw ``y`` against ``x`` as a PNG at ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines = series(rows, x, factors, y)
    if not lines:
        raise ValueError("the study has no finished cells to plot")
    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs = [p[0] for line in lines.values() for p in line]
    levels = sorted(set(xs), key=lambda v: _order(v, rows, x))
    categorical = any(isinstance(v, str) for v in xs)
    for label, line in lines.items():
        at, mean, std, _ = zip(*line, strict=True)
        if categorical:  # e.g. architectures: evenly spaced, in the grid's order
            at = tuple(levels.index(v) for v in at)
        axes.errorbar(at, mean, yerr=std, marker="o", capsize=3, label=label)
    if categorical:
        axes.set_xticks(range(len(levels)), [str(v) for v in levels])
    elif min(xs) > 0 and max(xs) / min(xs) >= 8:
        axes.set_xscale("log", base=10 if x == "num_params" else 2)
        if x != "num_params":
            ticks = sorted(set(xs))
            axes.set_xticks(ticks, [f"{t:g}" for t in ticks])
    axes.set_xlabel(LABELS.get(x, x))
    axes.set_ylabel(LABELS.get(y, y))
    seeds = max(p[3] for line in lines.values() for p in line)
    axes.set_title(title or f"{LABELS.get(y, y)} vs {LABELS.get(x, x)}", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    if seeds > 1:
        figure.text(0.01, 0.01, f"error bars: std over {seeds} seeds", fontsize=7)
    figure.tight_layout()
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic.write_bytes(out, buffer.getvalue())


def default_x(factors: Sequence[str]) -> str:
    """The first factor that is not the target or the seed."""
    for factor in factors:
        if factor not in ("target", "seed"):
            return factor
    raise ValueError("the grid varies only the target and the seed; pass --x COLUMN")
