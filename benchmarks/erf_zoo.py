"""The effective receptive field of every zoo target beside how well one pair copies it.

The paper's Fig. 4 argues that a target whose output at a pixel depends on a
wide neighbourhood (a large effective receptive field, ERF) is harder to
imitate from one pair. This survey tests that on the zoo: for each row of the
zoo table (``docs/ZOO.md``, made by ``benchmarks/zoo.py``; its PSNR and floor
columns are read, not re-measured) it measures the black-box ERF of the
target's *model* (the part after the last ``|``; the probes are the paper's
noisy images, sigma 25, so the spec's degradations are not applied) with
:func:`onepair.erf.black_box_erf` and draws its heat map, then plots the ERF
radius against the imitation PSNR above the floor and reports Spearman's rank
correlation.

    python benchmarks/erf_zoo.py -o bench-out --figures docs/erf [--doc SECTION.md]

Writes ``OUT/erf_zoo.json`` (machine, settings, one row per target: radius
holding 95% and 50% of the change, ERF total, queries, seconds including the
model's loading, PSNR, floor, PSNR - floor; the skipped targets; the
correlations), ``FIGURES/<model>.png`` heat maps (at most 360 px wide),
``FIGURES/erf_vs_psnr.png`` (with the imitator's receptive-field radius
marked) and, with ``--doc``, a Markdown section for docs/REPRODUCTION.md.

Probe images: the built-in photographs of :data:`onepair.erf.IMAGES` for
photograph rows; for microscopy (``ihc``) rows, ``--size`` crops spread over
builtin:ihc passed through the spec's degradations (for
``hematoxylin|teacher-stain``: the haematoxylin channel the model takes). The
model's input channels are those of the degraded example image. Rows whose
model text repeats (one model behind two degradations) share one measurement.
Rows that cannot run here (a missing optional package, model file or teacher)
are listed as skipped with the reason. ``--resume`` keeps the rows already in
``OUT/erf_zoo.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import machine, machine_line, table, write_record
from onepair import atomic
from onepair.erf import DELTA, black_box_erf, erf_radius
from onepair.erf_figure import save_heatmap
from onepair.samples import sample
from onepair.targets import SpecTarget, load_target

HEATMAP_WIDTH = 360  # px: heat maps are shrunk to this width for the docs
# heat maps shown in the section, when measured: local to global
HIGHLIGHTS = (
    "gaussian-blur:sigma=2",
    "median",
    "noise:sigma=25|teacher-denoiser",
    "noise:sigma=25|maxim",
    "jpeg",
    "clahe",
)
CORRELATIONS = {  # key -> what the Spearman correlation relates
    "gain": "95% radius vs PSNR − floor",
    "psnr": "95% radius vs PSNR",
    "gain_spatial": "95% radius vs PSNR − floor, radius > 0",
    "psnr_spatial": "95% radius vs PSNR, radius > 0",
    "gain_r50": "50% radius vs PSNR − floor",
    "psnr_r50": "50% radius vs PSNR",
}
COLUMNS = ["target", "radius", "radius_50", "psnr", "floor", "psnr_minus_floor", "seconds"]


@dataclass(frozen=True)
class ZooRow:
    """One row of the zoo table: ``psnr``/``psnr_std`` in dB; ``floor`` None when absent."""

    spec: str
    description: str
    images: str  # "photo" or "ihc"
    psnr: float
    psnr_std: float
    floor: float | None


def parse_zoo(text: str) -> list[ZooRow]:
    """The rows of the zoo table in Markdown ``text`` (the layout ``benchmarks/zoo.py`` writes).

    Columns are found by header name (``target``, ``what it is``, ``images``,
    ``PSNR dB`` as ``mean ± std``, ``floor dB`` as a number, ``inf`` or ``-``);
    the spec is the target cell's backticked text with ``\\|`` unescaped.
    """
    lines = [line.strip() for line in text.splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("| target |"))
    except StopIteration:
        raise ValueError("no zoo table found: expected a header line '| target | ...'") from None
    header = _cells(lines[start])
    need = ["target", "what it is", "images", "PSNR dB", "floor dB"]
    if missing := [n for n in need if n not in header]:
        raise ValueError(f"zoo table header {header} lacks columns {missing}")
    col = {n: header.index(n) for n in need}
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        spec = re.fullmatch(r"`(.+)`", cells[col["target"]])
        psnr = re.fullmatch(r"([-\d.]+)\s*±\s*([-\d.]+)", cells[col["PSNR dB"]])
        if not spec or not psnr:
            raise ValueError(f"zoo table row {line!r}: expected `spec` and 'mean ± std' cells")
        floor = cells[col["floor dB"]]
        rows.append(
            ZooRow(
                spec.group(1),
                cells[col["what it is"]],
                cells[col["images"]],
                float(psnr.group(1)),
                float(psnr.group(2)),
                None if floor in ("-", "") else float(floor),
            )
        )
    return rows


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def model_text(spec: str) -> str:
    """The model part of a spec: what follows its last ``|``."""
    return spec.rsplit("|", 1)[-1].strip()


def slug(text: str) -> str:
    """A file name stem for ``text``: runs of other characters become ``-``."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").replace(".", "p")


def probes(kind: str, target: SpecTarget, size: int, count: int) -> list[np.ndarray] | None:
    """Clean probe images for a row: None (the built-in photographs) or degraded ihc crops."""
    if kind == "photo":
        return None
    if kind != "ihc":
        raise ValueError(f"image kind is {kind!r}; expected 'photo' or 'ihc'")
    ihc = sample("ihc")
    per_side = math.ceil(math.sqrt(count))
    tops = np.linspace(0, ihc.shape[0] - size, per_side).astype(int)
    lefts = np.linspace(0, ihc.shape[1] - size, per_side).astype(int)
    crops = [ihc[t : t + size, c : c + size] for t in tops for c in lefts][:count]
    return [target.degrade(crop, seed=i) for i, crop in enumerate(crops)]


def input_channels(kind: str, target: SpecTarget, size: int) -> int:
    """The model's input channels: those of an example image after the spec's degradations."""
    example = sample("astronaut", size) if kind == "photo" else sample("ihc", size)
    return int(target.degrade(example, seed=0).shape[2])


def measure(row: ZooRow, args: argparse.Namespace, figures: Path) -> dict[str, Any]:
    """The ERF of ``row``'s model, its heat map written to ``figures/<slug>.png``."""
    target = load_target(row.spec)
    channels = input_channels(row.images, target, args.size)
    started = time.perf_counter()
    result = black_box_erf(
        target,
        images=probes(row.images, target, args.size, args.count),
        size=args.size,
        count=args.count,
        sigma=args.sigma,
        delta=DELTA,
        channels=channels,
        seed=args.seed,
    )
    seconds = time.perf_counter() - started
    name = f"{slug(model_text(row.spec))}.png"
    save_heatmap(
        result, figures / name, title=f"{model_text(row.spec)}: r = {result.radius:.1f} px"
    )
    shrink_png(figures / name, HEATMAP_WIDTH)
    info = result.to_dict()
    return {
        "radius": result.radius,
        "radius_50": erf_radius(result.map, result.scale, 0.5),
        "erf_total": info["total"],
        "scale": result.scale,
        "channels": channels,
        "queries": result.queries,
        "seconds": round(seconds, 2),
        "heatmap": name,
    }


def shrink_png(path: Path, width: int) -> None:
    """Resize a PNG to at most ``width`` px wide (Lanczos), as an optimised palette PNG."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    if image.width > width:
        height = round(image.height * width / image.width)
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").quantize(256).save(buffer, format="PNG", optimize=True)
    atomic.write_bytes(path, buffer.getvalue())


def _number(value: Any) -> float | None:
    """A JSON value as a float ("inf" strings included); None when absent."""
    return None if value is None else float(value)


def gain(row: dict[str, Any]) -> float | None:
    """PSNR minus floor in dB; None without a finite floor."""
    floor = _number(row.get("floor"))
    return row["psnr"] - floor if floor is not None and math.isfinite(floor) else None


def correlations(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spearman's rho (and p) of ERF radius against PSNR and against PSNR - floor.

    Keys as in :data:`CORRELATIONS`. ``psnr``: every row; ``gain``: rows with a
    finite floor (identity and saturation have an infinite floor, grayscale
    none); ``_spatial``: without pointwise targets (radius 0), whose ties at
    zero could carry the trend alone; ``_r50``: the 50%-mass radius instead of
    the 95% one, less swayed by a faint but wide tail.
    """
    from scipy.stats import spearmanr

    def rho(pairs: list[tuple[float, float]]) -> dict[str, Any]:
        if len(pairs) < 3:
            return {"rho": None, "p": None, "n": len(pairs)}
        r = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
        ok = math.isfinite(r.statistic)
        return {
            "rho": float(r.statistic) if ok else None,
            "p": float(r.pvalue) if ok else None,
            "n": len(pairs),
        }

    psnr = [(r["radius"], r["psnr"]) for r in rows]
    gains = [(r["radius"], g) for r in rows if (g := gain(r)) is not None]
    gains_50 = [(r["radius_50"], g) for r in rows if (g := gain(r)) is not None]
    return {
        "gain": rho(gains),
        "psnr": rho(psnr),
        "gain_spatial": rho([p for p in gains if p[0] > 0]),
        "psnr_spatial": rho([p for p in psnr if p[0] > 0]),
        "gain_r50": rho(gains_50),
        "psnr_r50": rho([(r["radius_50"], r["psnr"]) for r in rows]),
    }


def label(spec: str, specs: list[str]) -> str:
    """A short name: the model's name, with its first degradation when the name repeats."""
    name = model_text(spec).split(":")[0]
    if sum(model_text(s).split(":")[0] == name for s in specs) > 1 and "|" in spec:
        return f"{name} ({spec.split('|')[0].replace(':sigma=', ' ')})"
    return name


def imitator_reach() -> int:
    """How far (input px) the zoo's imitator (the ``default`` preset) sees from a pixel."""
    from onepair.models import build
    from onepair.presets import preset

    return build(preset("default", 3, 3, 1)[0], 3, 3, 1).receptive_field().hi


def scatter(rows: list[dict[str, Any]], corr: dict[str, Any], reach: int, path: Path) -> Path:
    """ERF radius (symlog x) against PSNR - floor (left) and raw PSNR (right).

    A dotted line marks ``reach``, the imitator's receptive-field radius.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 6), dpi=90)
    FigureCanvasAgg(figure)
    specs = [r["target"] for r in rows]
    panels = [("gain", "imitation PSNR − floor (dB)", gain), ("psnr", "imitation PSNR (dB)", None)]
    labels = []
    for i, (key, ylabel, y_of) in enumerate(panels):
        axes = figure.add_subplot(1, 2, i + 1)
        points = [(r["radius"], y_of(r) if y_of else r["psnr"], r["target"]) for r in rows]
        points = [(x, y, label(t, specs)) for x, y, t in points if y is not None]
        axes.scatter([x for x, _, _ in points], [y for _, y, _ in points], s=18, zorder=3)
        labels.append((axes, points))
        if key == "gain":
            axes.axhline(0, color="grey", linewidth=0.8, linestyle="--")
        axes.axvline(reach, color="tab:red", linewidth=0.8, linestyle=":")
        axes.text(
            reach,
            1.0,
            f" imitator reach {reach} px",
            color="tab:red",
            fontsize=7,
            transform=axes.get_xaxis_transform(),
            va="top",
        )
        axes.set_xscale("symlog", linthresh=1.0)
        axes.set_xlim(-0.2, 2 * max([r["radius"] for r in rows] + [1.0]))
        axes.set_xlabel("ERF radius, 95% of the change (input px, symlog)")
        axes.set_ylabel(ylabel)
        c = corr[key]
        text = "n/a" if c["rho"] is None else f"{c['rho']:+.2f} (p={c['p']:.2g}, n={c['n']})"
        axes.set_title(f"Spearman ρ = {text}", fontsize=10)
        axes.grid(alpha=0.3)
    figure.suptitle("Effective receptive field vs. one-pair imitation, the onepair zoo")
    figure.tight_layout()
    for axes, points in labels:  # after the layout: label positions are in points
        _place_labels(axes, points, figure.dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    shrink_png(path, round(figure.get_figwidth() * figure.dpi))  # palette PNG: about half
    return path


def _place_labels(axes: Any, points: list[tuple[float, float, str]], dpi: float) -> None:
    """Label each point beside it, on the first free spot of: right, left, then further up
    or down (with a leader line), so that no two labels overlap."""
    size, placed = 6.5, []  # font size (pt); boxes (x0, y0, x1, y1) in points
    right = axes.get_window_extent().x1 * 72 / dpi
    for x, y, text in sorted(points, key=lambda p: -p[1]):
        px, py = axes.transData.transform((x, y)) * 72 / dpi
        width, height = 0.56 * size * len(text), 1.15 * size
        sides = [3, -3 - width] if px + 3 + width < right else [-3 - width]
        spots = [(dx, k) for k in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6) for dx in sides]
        for dx, k in spots:
            box = (px + dx, py + 2 + k * height, px + dx + width, py + 2 + (k + 1) * height)
            if not any(
                a < box[2] and box[0] < c and b < box[3] and box[1] < d for a, b, c, d in placed
            ):
                break
        placed.append(box)
        axes.annotate(
            text,
            (x, y),
            xytext=(dx, 2 + k * height),
            textcoords="offset points",
            fontsize=size,
            arrowprops={"arrowstyle": "-", "linewidth": 0.3, "color": "grey"} if k else None,
        )


def markdown(record: dict[str, Any], link: str) -> str:
    """The section for docs/REPRODUCTION.md; figures linked as ``link/<file>``."""
    s, corr = record["settings"], record["correlation"]
    rows = [
        {
            **r,
            "target": f"`{r['target']}`",
            "floor": _number(r["floor"]),
            "psnr_minus_floor": gain(r),
        }
        for r in record["rows"]
    ]
    lines = [
        "## Effective receptive fields across the zoo",
        "",
        "Made by `python benchmarks/erf_zoo.py -o bench-out --figures docs/erf` on "
        + machine_line(record["machine"])
        + f". Black-box ERF of each target's model: {s['count']} noisy probes "
        f"(sigma {s['sigma']:g}) of {s['size']}x{s['size']} px, the centre pixel changed by "
        f"{s['delta']:g}; ERF radius = the disc holding 95% of the mean output change (50% "
        "radius: half of it). PSNR and floor are the zoo table's (docs/ZOO.md, 60 s fits).",
        "",
        table(rows, ["target", "radius", "radius_50", "psnr", "floor", "psnr_minus_floor"]).replace(
            "| target | radius | radius_50 | psnr | floor | psnr_minus_floor |",
            "| target | ERF radius px | 50% radius px | imitation PSNR dB | floor dB "
            "| PSNR − floor dB |",
        ),
        "",
    ]
    for key, what in CORRELATIONS.items():
        c = corr[key]
        value = "n/a" if c["rho"] is None else f"{c['rho']:+.2f} (p = {c['p']:.2g})"
        lines.append(f"- Spearman ρ, {what}: {value}, n = {c['n']}")
    lines += ["", f"![ERF radius against imitation PSNR]({link}/erf_vs_psnr.png)", ""]
    shown = [r for h in HIGHLIGHTS for r in record["rows"] if r["target"] == h]
    if shown:
        lines += [
            "Heat maps of a few (log colour scale; the red circle holds 95% of the change; "
            f"all targets' maps are in {link}/):",
            "",
        ]
    for i in range(0, len(shown), 3):
        group = shown[i : i + 3]
        if i == 0:
            lines += ["| " + " | ".join(" " for _ in group) + " |", "|---" * len(group) + "|"]
        images = [f"![ERF of {r['model']}]({link}/{r['heatmap']})" for r in group]
        lines.append("| " + " | ".join(images) + " |")
    lines.append("")
    if record["skipped"]:
        lines += ["Skipped here:", ""] + [f"- `{k}`: {v}" for k, v in record["skipped"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default="docs/ZOO.md", help="the zoo table to read")
    parser.add_argument("--size", type=int, default=96, help="side of each probe image")
    parser.add_argument("--count", type=int, default=8, help="probe images per target")
    parser.add_argument("--sigma", type=float, default=25.0, help="probe noise, 0..255 scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", metavar="SPEC", help="only these zoo specs")
    parser.add_argument("--resume", action="store_true", help="keep rows already measured")
    parser.add_argument("-o", "--out", default="bench-out", help="folder for erf_zoo.json")
    parser.add_argument("--figures", default="docs/erf", help="folder for the PNGs")
    parser.add_argument("--doc", help="also write the Markdown section here")
    args = parser.parse_args(argv)

    zoo = parse_zoo(Path(args.zoo).read_text())
    if unknown := set(args.only or []) - {z.spec for z in zoo}:
        raise SystemExit(f"--only: {sorted(unknown)} not in {args.zoo}")
    info, reach = machine(), imitator_reach()
    print(machine_line(info), flush=True)
    figures, path = Path(args.figures), Path(args.out) / "erf_zoo.json"
    rows: list[dict[str, Any]] = []
    if args.resume and path.is_file():
        rows = json.loads(path.read_text())["rows"]
    skipped: dict[str, str] = {}
    for z in zoo:
        if (args.only and z.spec not in args.only) or z.spec in {r["target"] for r in rows}:
            continue
        shared = next((r for r in rows if model_text(r["target"]) == model_text(z.spec)), None)
        try:
            if shared:
                erf = {**shared, "seconds": 0.0, "shared_with": shared["target"]}
            else:
                erf = measure(z, args, figures)
        except (ValueError, ImportError, FileNotFoundError) as error:
            skipped[z.spec] = str(error).splitlines()[0][:300]
            print(f"erf  {z.spec}: skipped ({skipped[z.spec]})", flush=True)
            continue
        keep = (
            "radius",
            "radius_50",
            "erf_total",
            "scale",
            "channels",
            "queries",
            "seconds",
            "heatmap",
        )
        row = {
            "target": z.spec,
            "model": model_text(z.spec),
            "images": z.images,
            **{k: erf[k] for k in keep},
            "psnr": z.psnr,
            "psnr_std": z.psnr_std,
            "floor": z.floor,
        }
        row["psnr_minus_floor"] = gain(row)
        if "shared_with" in erf:
            row["shared_with"] = erf["shared_with"]
        rows.append(row)
        print(f"erf  {z.spec}: radius {row['radius']:.2f} px, {row['seconds']:.1f} s", flush=True)
        write_record(args.out, "erf_zoo", _record(info, args, rows, skipped, reach))
    order = {z.spec: i for i, z in enumerate(zoo)}
    rows.sort(key=lambda r: order.get(r["target"], len(order)))
    record = _record(info, args, rows, skipped, reach)
    scatter(rows, record["correlation"], reach, figures / "erf_vs_psnr.png")
    print(table(rows, COLUMNS))
    print(json.dumps(record["correlation"]))
    print(f"wrote {write_record(args.out, 'erf_zoo', record)}", flush=True)
    if args.doc:
        docs = Path(args.zoo).parent
        link = os.path.relpath(figures.resolve(), docs.resolve())
        Path(args.doc).write_text(markdown(record, link))
        print(f"wrote {args.doc}", flush=True)
    return record


def _record(
    info: dict, args: argparse.Namespace, rows: list, skipped: dict, reach: int
) -> dict[str, Any]:
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "doc", "resume")}
    settings.update(delta=DELTA, mass=0.95, imitator_reach=reach)
    return {
        "benchmark": "erf_zoo",
        "machine": info,
        "settings": settings,
        "rows": rows,
        "skipped": skipped,
        "correlation": correlations(rows),
    }


if __name__ == "__main__":
    main()
