"""The Pareto front of the default imitator: fidelity per second of training against
apply throughput.

Reads a finished study of ``benchmarks/pareto.toml`` (held-out PSNR after a
30 s fit, per U-Net width, depth, unshuffle and batch size), measures the
apply throughput of each network shape on a 2048 x 2048 RGB image here, in
this process (the best of ``--repeats``, tiles of ``--tile``), and plots PSNR
against megapixels/s, one panel per target, with the 5 megapixels/s goal.

    onepair study run benchmarks/pareto.toml -o bench-out/pareto
    python benchmarks/pareto_plot.py bench-out/pareto -o bench-out --figure docs/perf/pareto.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import machine, machine_line, table, write_record
from onepair.models import UNetConfig, build
from onepair.study.store import Store
from onepair.tiling import apply_network

SHAPE = ("width", "depth", "unshuffle")
GOAL_MPX = 5.0


def throughput(shape: tuple[int, int, int], side: int, tile: int, repeats: int) -> float:
    """Megapixels/s of the untrained network of ``shape`` on a random RGB image."""
    width, depth, unshuffle = shape
    network = build(UNetConfig(width=width, depth=depth, unshuffle=unshuffle), 3, 3).eval()
    image = np.random.default_rng(0).random((side, side, 3), dtype=np.float32)
    apply_network(network, image[:300, :300], tile=tile)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        apply_network(network, image, tile=tile)
        times.append(time.perf_counter() - start)
    return side * side / 1e6 / min(times)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({r["target"] for r in rows})
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4.2), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        for batch, marker in ((4, "o"), (16, "s")):
            mine = [r for r in rows if r["target"] == target and r["batch_size"] == batch]
            ax.scatter(
                [r["mpix_per_s"] for r in mine],
                [r["psnr"] for r in mine],
                marker=marker,
                label=f"batch {batch}",
            )
            for r in mine:
                ax.annotate(
                    f"{r['width']}x{r['depth']}"
                    + (f"/{r['unshuffle']}" if r["unshuffle"] > 1 else ""),
                    (r["mpix_per_s"], r["psnr"]),
                    fontsize=7,
                    xytext=(3, 2),
                    textcoords="offset points",
                )
        ax.axvline(GOAL_MPX, color="gray", linestyle="--", linewidth=1)
        ax.set_title(target.replace("noise:sigma=25|", "noise 25 | "), fontsize=9)
        ax.set_xlabel("apply throughput, megapixels/s (2 CPU cores)")
        ax.set_ylabel("held-out PSNR after a 30 s fit, dB")
        ax.legend(fontsize=8)
    fig.suptitle("width x depth[/unshuffle] of the U-Net; dashed: the 5 Mpx/s goal", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="folder of a finished study of benchmarks/pareto.toml")
    parser.add_argument("--side", type=int, default=2048, help="side of the apply test image")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--figure", default="docs/perf/pareto.png")
    parser.add_argument("-o", "--out", default="bench-out", help="folder for pareto.json")
    args = parser.parse_args(argv)

    info = machine()
    print(machine_line(info), flush=True)
    store = Store(args.study, create=False)
    rows = store.rows()
    store.close()
    speeds = {}
    for shape in sorted({tuple(r[k] for k in SHAPE) for r in rows}):
        speeds[shape] = throughput(shape, args.side, args.tile, args.repeats)
        print(
            f"apply  width {shape[0]} depth {shape[1]} unshuffle {shape[2]}: "
            f"{speeds[shape]:.2f} Mpx/s",
            flush=True,
        )
    keep = ["target", *SHAPE, "batch_size", "psnr", "floor_psnr", "num_params", "steps_done"]
    table_rows = []
    for r in rows:
        row = {k: r.get(k) for k in keep}
        row["mpix_per_s"] = speeds[tuple(r[k] for k in SHAPE)]
        table_rows.append(row)
    plot(table_rows, Path(args.figure))
    record = {
        "benchmark": "pareto",
        "machine": info,
        "settings": vars(args),
        "rows": table_rows,
    }
    path = write_record(args.out, "pareto", record)
    print(table(table_rows, keep[:5] + ["mpix_per_s", "psnr", "num_params"]))
    print(f"wrote {path} and {args.figure}", flush=True)
    return record


if __name__ == "__main__":
    main()
