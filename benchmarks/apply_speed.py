"""Apply throughput (megapixels/s) and peak memory of the default imitator.

Each image size runs in a fresh child process, so its peak resident memory
(VmHWM, see :func:`peak_rss_bytes`) is that size's alone; the child also
reports its resident memory after imports, and the difference. The network
is the ``default`` preset's, untrained (weights do not change the cost), on
square random RGB images, tiled with ``--tile``. Goal: a 4000 x 4000 RGB
image peaks below 2 GB.

    python benchmarks/apply_speed.py --sizes 1000 2000 4000 -o bench-out
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import machine, machine_line, table, write_record
from onepair.fit import resolve_device
from onepair.imitator import Imitator
from onepair.models import build
from onepair.presets import preset

COLUMNS = [
    "size",
    "tile",
    "seconds",
    "mpix_per_s",
    "baseline_mb",
    "peak_mb",
    "delta_mb",
    "below_2gb",
]
GOAL_BYTES = 2e9


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


def child(size: int, tile: int | None, repeats: int, device: str) -> dict:
    """Measure one size in this process; the result is printed as one JSON line."""
    baseline = peak_rss_bytes()
    model, _ = preset("default", 3, 3, 1)
    imitator = Imitator(build(model, 3, 3, 1), model).to(resolve_device(device))
    image = np.random.default_rng(0).random((size, size, 3), dtype=np.float32)
    imitator.apply(image[:256, :256], tile=tile)  # warm-up: one-off allocations, kernel choice
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = imitator.apply(image, tile=tile)
        if imitator.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del out
    peak = peak_rss_bytes()
    best = min(times)
    return {
        "size": size,
        "tile": tile,
        "seconds": best,
        "all_seconds": times,
        "mpix_per_s": size * size / 1e6 / best,
        "baseline_mb": baseline / 1e6,
        "peak_mb": peak / 1e6,
        "delta_mb": (peak - baseline) / 1e6,
        "below_2gb": peak < GOAL_BYTES,
        "device": str(imitator.device),
        "torch_threads": torch.get_num_threads(),
    }


def run_child(size: int, args: argparse.Namespace) -> dict:
    """Run :func:`child` for ``size`` in a fresh interpreter and read its JSON line."""
    command = [
        sys.executable,
        __file__,
        "--child",
        str(size),
        "--tile",
        str(args.tile),
        "--repeats",
        str(args.repeats),
        "--device",
        args.device,
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"apply_speed child for size {size} failed (exit {done.returncode}):\n{done.stderr}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1000, 2000, 4000],
        help="sides of the square RGB test images",
    )
    parser.add_argument("--tile", type=int, default=512, help="tile side; 0 = whole image")
    parser.add_argument("--repeats", type=int, default=1, help="timed applies; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("-o", "--out", default="bench-out", help="folder for apply_speed.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(child(args.child, args.tile or None, args.repeats, args.device)))
        return {}

    info = machine()
    print(machine_line(info), flush=True)
    rows = []
    for size in args.sizes:
        row = run_child(size, args)
        rows.append(row)
        print(
            f"apply_speed  {size}x{size}: {row['mpix_per_s']:.2f} Mpx/s, "
            f"peak {row['peak_mb']:.0f} MB",
            flush=True,
        )
    record = {
        "benchmark": "apply_speed",
        "machine": info,
        "settings": {
            "preset": "default",
            "goal": "4000x4000 RGB peaks below 2 GB",
            **{k: v for k, v in vars(args).items() if k != "child"},
        },
        "rows": rows,
    }
    path = write_record(args.out, "apply_speed", record)
    print(table(rows, COLUMNS))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
