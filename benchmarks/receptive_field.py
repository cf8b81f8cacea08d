"""How wide does each hard target look, and does it tell which imitator to fit?

The paper ties imitability to the target's effective receptive field (ERF), and
issue 4 asks whether the imitator's receptive field should match it. For each
target of the fidelity benchmark (``benchmarks/fidelity.py``, the same cached
pairs and held-out images) this measures two widths:

- the **black-box ERF** of the target's model (the paper's protocol,
  :func:`onepair.erf.black_box_erf`, with ``benchmarks/erf_zoo.py``'s probes):
  the radii of the discs holding 50 % and 95 % of the change; it needs queries
  beyond the pair;
- a **pair-only estimate**: least-squares linear filters of growing size solved
  on the example with its held-out blocks left out (as the fit's linear path
  is), each scored on those blocks and on the held-out images. The size the
  blocks pick is what one pair alone says about the target's width; the
  held-out column says whether it is right.

The record also lists the receptive fields of the presets' imitators, so that
the widths can be set beside the fidelity tables (docs/FIDELITY.md, "The
target's receptive field and the imitator's").

    python benchmarks/receptive_field.py -o bench-out/receptive-field   # about 5 minutes

Writes ``OUT/receptive_field.json`` and prints one table row per target.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common import machine, machine_line, table, write_record
from erf_zoo import input_channels, model_text, probes
from fidelity import HARD_TARGETS, cached_pairs
from onepair.erf import black_box_erf, erf_radius
from onepair.metrics import psnr
from onepair.models import build
from onepair.models.linear import LinearFilter
from onepair.pairs import Pair
from onepair.presets import PRESETS
from onepair.targets import load_target
from onepair.validation import Holdout

SIZES = (3, 5, 7, 9, 11, 15, 21, 27, 33)
COLUMNS = [
    "target",
    "erf_r50",
    "erf_r95",
    "blocks_pick",
    "held_best",
    "linear_15",
    "linear_pick",
    "linear_best",
]


def apply_linear(filt: LinearFilter, x: np.ndarray) -> np.ndarray:
    """``filt`` on a whole (H, W, C) image, its borders reflected as ``apply`` pads them."""
    r, s = filt.kernel // 2, filt.scale
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()
    with torch.no_grad():
        y = filt(F.pad(xt, (r, r, r, r), mode="reflect"))[0]
    y = y[:, s * r : y.shape[1] - s * r, s * r : y.shape[2] - s * r]
    return np.clip(y.permute(1, 2, 0).numpy(), 0.0, 1.0)


def linear_sweep(
    pair: Pair, held: list[tuple[str, np.ndarray, np.ndarray]], sizes, holdout: float = 0.125
) -> list[dict[str, Any]]:
    """One least-squares filter per size: its PSNR on the example's held-out blocks
    (solved without them) and its mean PSNR against the target on the held-out images."""
    rows = []
    for k in sizes:
        started = time.perf_counter()
        filt = LinearFilter(pair.in_channels, pair.out_channels, pair.scale, k)
        blocks = Holdout(pair, holdout, k // 2)
        filt.solve(pair.input, pair.output, keep=[~blocks.mask])
        scores = [psnr(apply_linear(filt, x), y) for _, x, y in held]
        rows.append(
            {
                "kernel": k,
                "blocks_psnr": blocks(filt, torch.device("cpu")),
                "held_psnr": float(np.mean(scores)),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return rows


def target_erf(spec: str, kind: str, size: int, count: int) -> dict[str, Any]:
    """The black-box ERF of ``spec``'s model on ``count`` probes of ``size`` pixels."""
    target = load_target(spec)
    result = black_box_erf(
        target,
        images=probes(kind, target, size, count),
        size=size,
        count=count,
        channels=input_channels(kind, target, size),
    )
    return {
        "model": model_text(spec),
        "erf_r50": erf_radius(result.map, result.scale, 0.5),
        "erf_r95": result.radius,
        "erf_queries": result.queries,
    }


def imitator_fields(channels: int = 3) -> dict[str, int]:
    """Receptive-field width (pixels) of each preset's network, linear path aside."""
    return {
        name: build(model, channels, channels).body_span.size
        for name, (model, _) in PRESETS.items()
    }


def summarise(sweep: list[dict[str, Any]], default_kernel: int = 15) -> dict[str, Any]:
    """The size the blocks pick, the best on held-out images, and the PSNRs of both."""
    pick = max(sweep, key=lambda r: r["blocks_psnr"])
    best = max(sweep, key=lambda r: r["held_psnr"])
    at = {r["kernel"]: r for r in sweep}
    return {
        "blocks_pick": pick["kernel"],
        "held_best": best["kernel"],
        "linear_pick": pick["held_psnr"],
        "linear_best": best["held_psnr"],
        "linear_15": at[default_kernel]["held_psnr"] if default_kernel in at else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(HARD_TARGETS))
    parser.add_argument("--kernels", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--size", type=int, default=256, help="side of the example")
    parser.add_argument("--held-out-size", type=int, default=256)
    parser.add_argument("--erf-size", type=int, default=96, help="side of the ERF probes")
    parser.add_argument("--erf-count", type=int, default=8, help="ERF probe images")
    parser.add_argument("--no-erf", action="store_true", help="the pair-only estimate alone")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/onepair/fidelity", help="queries"
    )
    parser.add_argument("-o", "--out", default="bench-out", help="folder for the JSON record")
    args = parser.parse_args(argv)
    if any(k < 1 or k % 2 == 0 for k in args.kernels):
        parser.error(f"--kernels must be odd sizes >= 1, not {args.kernels}")

    info = machine()
    print(machine_line(info), flush=True)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    record = {
        "benchmark": "receptive_field",
        "machine": info,
        "settings": {**vars(args), "cache": str(args.cache)},
        "imitators": imitator_fields(),
        "rows": rows,
        "skipped": skipped,
    }
    for spec in args.targets:
        kind = HARD_TARGETS.get(spec, "photo")
        try:
            pair, held = cached_pairs(spec, kind, args.size, args.held_out_size, 0, args.cache)
            erf = {} if args.no_erf else target_erf(spec, kind, args.erf_size, args.erf_count)
        except (ValueError, ImportError, FileNotFoundError) as error:
            skipped[spec] = str(error).splitlines()[0][:300]
            print(f"receptive-field  {spec}: skipped: {skipped[spec]}", flush=True)
            continue
        sweep = linear_sweep(pair, held, args.kernels)
        row = {"target": spec, **erf, **summarise(sweep), "sweep": sweep}
        rows.append(row)
        print(
            f"receptive-field  {spec}: ERF r50/r95 {row.get('erf_r50', float('nan')):.1f} / "
            f"{row.get('erf_r95', float('nan')):.1f} px; the blocks pick {row['blocks_pick']} "
            f"(held out {row['linear_pick']:.2f} dB), best held out {row['held_best']} "
            f"({row['linear_best']:.2f} dB)",
            flush=True,
        )
        write_record(args.out, "receptive_field", record)  # nothing lost if stopped
    path = write_record(args.out, "receptive_field", record)
    print(table(rows, COLUMNS))
    print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
