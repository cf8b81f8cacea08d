"""The zoo table: how well onepair imitates every zoo target from one pair.

For each target: one pair from one image (the example), the ``default``
imitator fitted for ``--seconds`` of wall time, then PSNR/SSIM of imitator vs
target on held-out images (never the example), beside the floor (the input
itself against the target's output). Photograph targets use the central
256 x 256 crop of builtin:astronaut as the example and builtin:coffee,
chelsea, rocket and camera as held-out images; microscopy targets
(immunohistochemistry) use the top-left quadrant of builtin:ihc as the
example and the other three quadrants as held-out images.

    python benchmarks/zoo.py --seconds 60 -o bench-out --doc docs/ZOO.md

Targets that cannot run here (a missing optional package, model file or
teacher) are listed as skipped with the reason. ``--resume`` keeps the rows
already in ``OUT/zoo.json`` and measures only the rest.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import machine, machine_line, table, write_record
from onepair.evaluate import evaluate
from onepair.fit import fit
from onepair.pairs import Pair
from onepair.presets import preset
from onepair.samples import sample
from onepair.targets import MODELS, load_target

# (spec, images); images: "photo" or "ihc" (see the module docstring)
ZOO: list[tuple[str, str]] = [
    ("identity", "photo"),
    ("gaussian-blur:sigma=2", "photo"),
    ("motion-blur", "photo"),
    ("unsharp:radius=2,amount=1", "photo"),
    ("median", "photo"),
    ("bilateral", "photo"),
    ("noise:sigma=25|tv-denoise", "photo"),
    ("noise:sigma=25|nl-means", "photo"),
    ("noise:sigma=25|cv-nl-means", "photo"),
    ("noise:sigma=25|wavelet-denoise", "photo"),
    ("poisson|wavelet-denoise", "photo"),
    ("noise:sigma=25|bm3d", "photo"),
    ("blur|richardson-lucy", "photo"),
    ("blur|wiener", "photo"),
    ("clahe", "photo"),
    ("sobel", "photo"),
    ("canny", "photo"),
    ("downscale:factor=2|bicubic-up:factor=2", "photo"),
    ("lanczos-up", "photo"),
    ("jpeg", "photo"),
    ("stylization", "photo"),
    ("detail-enhance", "photo"),
    ("edge-preserving", "photo"),
    ("grayscale", "photo"),
    ("sepia", "photo"),
    ("gamma", "photo"),
    ("saturation", "photo"),
    ("hed-stains", "ihc"),
    ("noise:sigma=25|maxim", "photo"),
    ("noise:sigma=15|maxim", "photo"),
    ("realesr-animevideov3-x2", "photo"),
    ("realesrgan-x4", "photo"),
    ("noise:sigma=25|teacher-denoiser", "photo"),
    ("hematoxylin|teacher-stain", "ihc"),
    ("teacher-tissue", "ihc"),
]
PHOTO_EXAMPLE, PHOTO_HELD_OUT = "astronaut", ("coffee", "chelsea", "rocket", "camera")
COLUMNS = ["target", "psnr", "ssim", "floor_psnr", "val_psnr", "steps", "fit_s", "queries"]


def images(
    kind: str, size: int, held_size: int | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The example (``size``) and the held-out images (by name; ``held_size``, by default
    ``size``) for ``kind``."""
    held_size = held_size or size
    if kind == "photo":
        held = {n: sample(n, held_size) for n in PHOTO_HELD_OUT}
        return sample(PHOTO_EXAMPLE, size), held
    if kind == "ihc":
        ihc = sample("ihc")
        h, w = ihc.shape[0] // 2, ihc.shape[1] // 2
        quadrants = {
            "ihc-top-left": ihc[:h, :w],
            "ihc-top-right": ihc[:h, w:],
            "ihc-bottom-left": ihc[h:, :w],
            "ihc-bottom-right": ihc[h:, w:],
        }
        example = quadrants.pop("ihc-top-left")
        held = {k: v[:held_size, :held_size] for k, v in quadrants.items()}
        return example[:size, :size], held
    raise ValueError(f"unknown image kind {kind!r}")


def measure(spec: str, kind: str, seconds: float, size: int, seed: int) -> dict:
    """One pair, one fit of ``seconds``, evaluation on the held-out images."""
    target = load_target(spec)
    example, held_out = images(kind, size)
    started = time.perf_counter()
    x = target.degrade(example, seed)
    pair = Pair.of(x, target(x))
    query_s = time.perf_counter() - started
    model, config = preset("default", pair.in_channels, pair.out_channels, pair.scale)
    config = replace(config, seconds=seconds, steps=10**9, seed=seed)
    imitator = fit(pair, model, config, show_progress=False)
    evaluation = evaluate(imitator, target, list(held_out.values()), names=list(held_out))
    return {
        "target": spec,
        "description": _description(spec),
        "images": kind,
        "psnr": evaluation.mean("psnr"),
        "psnr_std": evaluation.std("psnr"),
        "ssim": evaluation.mean("ssim"),
        "floor_psnr": evaluation.mean("floor_psnr"),
        "val_psnr": imitator.metrics["val_psnr"],
        "steps": imitator.metrics["steps"],
        "fit_s": imitator.metrics["seconds"],
        "example_query_s": round(query_s, 2),
        "queries": 1 + evaluation.queries,
        "per_image_psnr": {r.image: r.psnr for r in evaluation.rows},
    }


def _description(spec: str) -> str:
    name = spec.split("|")[-1].split(":")[0]
    return MODELS[name][1] if name in MODELS else ""


def markdown(record: dict) -> str:
    """docs/ZOO.md: the table, the command and the machine."""
    s = record["settings"]
    lines = [
        "# The zoo: how well one pair copies each target",
        "",
        f"Made by `python benchmarks/zoo.py --seconds {s['seconds']:g} --doc docs/ZOO.md` "
        "(`make bench-zoo`) on " + machine_line(record["machine"]) + ".",
        "",
        "Each row: one pair made from one image, the default imitator fitted for "
        f"{s['seconds']:g} s, PSNR/SSIM of the imitation against the target's output on "
        "held-out images (mean over them), beside the floor (the input itself against the "
        "target's output; for a scale change the bicubic up-scaled input). Photograph "
        f"targets: example builtin:{PHOTO_EXAMPLE} ({s['size']}x{s['size']} centre), held out "
        f"{', '.join('builtin:' + n for n in PHOTO_HELD_OUT)}. Microscopy (`ihc`) targets: "
        "example the top-left quadrant of builtin:ihc, held out the other three. "
        "`val` is the fit's own estimate from the held-out blocks of the example.",
        "",
        "| target | what it is | images | PSNR dB | SSIM | floor dB | val dB | steps |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in record["rows"]:
        spec = r["target"].replace("|", "\\|")  # a table cell: escape the spec's pipes
        lines.append(
            f"| `{spec}` | {r['description']} | {r['images']} | {r['psnr']:.2f} "
            f"± {r['psnr_std']:.2f} | {r['ssim']:.3f} | {_num(r['floor_psnr'])} | "
            f"{_num(r['val_psnr'])} | {r['steps']} |"
        )
    if record["settings"].get("note"):
        lines += ["", record["settings"]["note"]]
    if record["skipped"]:
        lines += ["", "Skipped here:", ""]
        lines += [f"- `{k}`: {v}" for k, v in record["skipped"].items()]
    return "\n".join(lines) + "\n"


def _num(value: float | str | None) -> str:
    """A dB figure; JSON records hold infinity as the string "inf"."""
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="fit budget per target")
    parser.add_argument("--size", type=int, default=256, help="side of the example crop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", nargs="+", help="only these specs (default: the zoo)")
    parser.add_argument("--resume", action="store_true", help="keep rows already measured")
    parser.add_argument("-o", "--out", default="bench-out", help="folder for zoo.json")
    parser.add_argument("--doc", help="also write the Markdown table here (docs/ZOO.md)")
    parser.add_argument("--note", default="", help="a paragraph for the doc about this run")
    args = parser.parse_args(argv)

    info = machine()
    print(machine_line(info), flush=True)
    path = Path(args.out) / "zoo.json"
    rows, skipped = [], {}
    if args.resume and path.is_file():
        rows = json.loads(path.read_text())["rows"]
    done = {r["target"] for r in rows}
    chosen = [(s, k) for s, k in ZOO if not args.targets or s in args.targets]
    for spec, kind in chosen:
        if spec in done:
            continue
        try:
            row = measure(spec, kind, args.seconds, args.size, args.seed)
        except (ValueError, ImportError, FileNotFoundError) as error:
            skipped[spec] = str(error).splitlines()[0][:300]
            print(f"zoo  {spec}: skipped ({skipped[spec]})", flush=True)
            continue
        rows.append(row)
        print(
            f"zoo  {spec}: {row['psnr']:.2f} dB (floor {_num(row['floor_psnr'])} dB, "
            f"{row['steps']} steps)",
            flush=True,
        )
        record = _record(info, args, rows, skipped)
        write_record(args.out, "zoo", record)  # after every target: nothing lost on a kill
    order = {s: i for i, (s, _) in enumerate(ZOO)}
    rows.sort(key=lambda r: order.get(r["target"], len(order)))
    record = _record(info, args, rows, skipped)
    print(table(rows, COLUMNS))
    print(f"wrote {write_record(args.out, 'zoo', record)}", flush=True)
    if args.doc:
        Path(args.doc).write_text(markdown(record))
        print(f"wrote {args.doc}", flush=True)
    return record


def _record(info: dict, args: argparse.Namespace, rows: list, skipped: dict) -> dict:
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "doc", "resume")}
    if not settings.get("note"):
        settings.pop("note", None)
    settings["preset"] = "default"
    return {
        "benchmark": "zoo",
        "machine": info,
        "settings": settings,
        "rows": rows,
        "skipped": skipped,
    }


if __name__ == "__main__":
    main()
