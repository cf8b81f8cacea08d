"""Apply throughput (megapixels/s) and peak memory of the default imitator.

Each case runs in a fresh child process, so its peak resident memory (VmHWM,
see :func:`peak_rss_bytes`) is that case's alone; the child also reports its
resident memory after imports, and the difference. The network is the
preset's with random weights (they do not change the cost of the network; they
make outputs that compress like real ones), on square random RGB images,
tiled with ``--tile``, in two modes:

- ``memory``: ``Imitator.apply`` on a float32 array (input, padded copy and
  output whole in memory), up to ``--memory-max``;
- ``stream``: ``onepair.stream.apply_tiff`` from an 8-bit TIFF to a tiled
  8-bit TIFF, a band of rows at a time (reading, compressing and writing
  included).

Each case runs in each of ``--precisions`` (what the network's body computes in:
``auto`` is bfloat16 on a CPU with AMX tiles, else float32; a precision that
resolves to one already measured is skipped). The ``--baseline`` preset
(``paper-prototype``) is measured in memory at the smallest size in the same
run, in the first precision, for the ratio. Goals: the default at >= 5
megapixels/s; an 8192 x 8192 RGB image (streamed) peaks below 2 GB.

    python benchmarks/apply_speed.py -o bench-out
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine, machine_line, recipe, table, write_record
from onepair.fit import resolve_device
from onepair.imitator import Imitator
from onepair.models import build
from onepair.tiling import PRECISIONS, resolve_precision

COLUMNS = [
    "preset",
    "precision",
    "mode",
    "size",
    "seconds",
    "mpix_per_s",
    "peak_mb",
    "delta_mb",
    "below_2gb",
]
GOAL_BYTES = 2e9
MODES = ("memory", "stream")


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far.

    On Linux, VmHWM from /proc/self/status: ``ru_maxrss`` would not do, since
    the kernel carries the parent's peak over ``fork``/``exec`` into the child's
    ``ru_maxrss``. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def write_input(path: Path, size: int) -> None:
    """A random 8-bit RGB TIFF of ``size x size``, written a tile at a time (uncompressed:
    random pixels do not compress)."""
    import tifffile

    rng = np.random.default_rng(0)
    tiles = (
        rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        for _ in range(math.ceil(size / 256) ** 2)
    )
    tifffile.imwrite(
        path,
        tiles,
        shape=(size, size, 3),
        dtype=np.uint8,
        tile=(256, 256),
        photometric="rgb",
        bigtiff=size * size * 3 > 2**31,
    )


def child(args: argparse.Namespace) -> dict:
    """Measure one (preset, mode, size) in this process; printed as one JSON line."""
    from onepair import tiling
    from onepair.models import refine
    from onepair.stream import apply_tiff

    size = args.child
    tile = "auto" if args.tile < 0 else args.tile or None
    if args.host_tiles:  # the A/B switch: tiles copied from the host even on a GPU
        tiling._fits_on = lambda *_: False
    if args.refiner_whole:  # the A/B switch: a refiner's layers over whole tiles, not bands
        refine.BAND_BYTES = 1 << 62
    held = [0]  # applies that held the image on the device
    on_device = tiling.apply_on_device

    def counted(*a, **k):
        held[0] += 1
        return on_device(*a, **k)

    tiling.apply_on_device = counted
    baseline = peak_rss_bytes()
    precision = args.precisions[0]
    model, _ = recipe(args.recipe, 3, 3, 1)
    network = build(model, 3, 3, 1)
    with torch.no_grad():  # untrained but not zero: outputs that compress like real ones
        torch.manual_seed(0)
        torch.nn.init.normal_(network.head[0].weight, std=0.1)
        if network.linear is not None:
            for name, weights in network.linear.named_buffers():  # an adaptive path has two
                if name.endswith("weight"):
                    weights.normal_(0.0, 0.01)
    imitator = Imitator(network, model).to(resolve_device(args.device))
    warm = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    imitator.apply(warm, tile=tile, precision=precision)  # warm-up: allocations, kernels
    times = []
    for _ in range(args.repeats):
        if args.mode == "memory":
            image = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
            start = time.perf_counter()
            out = imitator.apply(image, tile=tile, precision=precision)
            if imitator.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            del out, image
        else:
            start = time.perf_counter()
            apply_tiff(
                imitator.network,
                args.input,
                Path(args.input).with_suffix(".out.tif"),
                tile=args.tile if args.tile > 0 else tiling.TILE_CPU,
                device=imitator.device,
                precision=precision,
            )
            times.append(time.perf_counter() - start)
    peak = peak_rss_bytes()
    best = min(times)
    return {
        "preset": args.recipe,
        "precision": str(tiling.resolve_precision(precision, imitator.device)).removeprefix(
            "torch."
        ),
        "mode": args.mode,
        "size": size,
        "tile": tiling.tile_side(tile, imitator.device),
        "seconds": best,
        "all_seconds": times,
        "mpix_per_s": size * size / 1e6 / best,
        "first_mpix_per_s": size * size / 1e6 / times[0],  # with its shapes' one-off set-up
        "baseline_mb": baseline / 1e6,
        "peak_mb": peak / 1e6,
        "delta_mb": (peak - baseline) / 1e6,
        "below_2gb": peak < GOAL_BYTES,
        "device": str(imitator.device),
        "held_on_device": held[0] > 0,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 1e6
        if imitator.device.type == "cuda"
        else None,
        "torch_threads": torch.get_num_threads(),
        "refiner_bands": not args.refiner_whole,
        "num_params": imitator.network.num_params(),
    }


def run_child(preset_name: str, precision: str, mode: str, size: int, folder: Path, args) -> dict:
    """Run :func:`child` in a fresh interpreter (its own peak memory) and read its line."""
    command = [
        sys.executable,
        __file__,
        "--child",
        str(size),
        "--recipe",
        preset_name,
        "--mode",
        mode,
        "--tile",
        str(args.tile),
        "--repeats",
        str(args.repeats),
        "--device",
        args.device,
        "--precisions",
        precision,
    ]
    if mode == "stream":
        path = folder / f"input-{size}.tif"
        if not path.exists():
            write_input(path, size)
        command += ["--input", str(path)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.host_tiles:
        command += ["--host-tiles"]
    if args.refiner_whole:
        command += ["--refiner-whole"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"apply_speed child for {preset_name} {precision} {mode} {size} failed "
            f"(exit {done.returncode}):\n{done.stderr}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1024, 4096, 8192],
        help="sides of the square RGB test images",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--baseline",
        default="paper-prototype",
        help="preset measured beside the default (in memory, smallest size), for the ratio",
    )
    parser.add_argument(
        "--memory-max", type=int, default=4096, help="largest side applied in memory"
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=-1,
        help="tile side; 0 = whole image; default: the device's (in memory 512 on the CPU, "
        "2048 on a GPU; streamed 512)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed applies; the best counts, the first is kept"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        default=["auto", "float32"],
        help="what the network's body computes in; auto: bfloat16 on a CPU with AMX tiles",
    )
    parser.add_argument(
        "--host-tiles",
        action="store_true",
        help="copy each tile from the host even where the image fits on the GPU",
    )
    parser.add_argument(
        "--refiner-whole",
        action="store_true",
        help="run a refiner's layers over whole tiles, not bands of rows (the A/B switch)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--recipe",
        default="default",
        help="the imitator measured: a preset, optionally with fields changed (default:depth=3)",
    )
    parser.add_argument("--mode", default="memory", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("-o", "--out", default="bench-out", help="folder for apply_speed.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(child(args)))
        return {}

    info = machine()
    print(machine_line(info), flush=True)
    rows = []
    device = resolve_device(args.device)
    precisions = {}  # each precision that computes in a dtype not yet measured
    for name in args.precisions:
        precisions.setdefault(resolve_precision(name, device), name)
    with tempfile.TemporaryDirectory(prefix="onepair-apply-") as folder:
        first = args.precisions[0]
        cases = [(args.baseline, first, "memory", min(args.sizes))] if args.baseline else []
        cases += [
            (args.recipe, precision, mode, size)
            for size in args.sizes
            for mode in args.modes
            for precision in precisions.values()
            if mode == "stream" or size <= args.memory_max
        ]
        for preset_name, precision, mode, size in cases:
            row = run_child(preset_name, precision, mode, size, Path(folder), args)
            rows.append(row)
            print(
                f"apply_speed  {preset_name} {row['precision']} {mode} {size}x{size}: "
                f"{row['mpix_per_s']:.2f} Mpx/s, peak {row['peak_mb']:.0f} MB",
                flush=True,
            )
    base = next((r for r in rows if r["preset"] == args.baseline), None)
    for row in rows:
        row["ratio_to_baseline"] = row["mpix_per_s"] / base["mpix_per_s"] if base else None
    record = {
        "benchmark": "apply_speed",
        "machine": info,
        "settings": {
            "goals": "default >= 5 Mpx/s; 8192x8192 RGB (streamed) peaks below 2 GB",
            **{k: v for k, v in vars(args).items() if k not in ("child", "mode", "input")},
        },
        "rows": rows,
    }
    path = write_record(args.out, "apply_speed", record)
    print(table(rows, COLUMNS + ["ratio_to_baseline"]))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
