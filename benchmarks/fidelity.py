"""Fidelity of the default imitator against training time, on the demo targets.

For each target and each time budget: one fit of the ``default`` preset with
that budget (the learning-rate schedule follows the budget, so a longer run
cannot be snapshotted part-way), on the demo's example (builtin astronaut,
central crop); then PSNR/SSIM of imitator vs target on the demo's held-out
photographs, beside the floor (the input itself against the target's output).

    python benchmarks/fidelity.py --budgets 15 30 60 120 -o bench-out
"""

from __future__ import annotations

import argparse

from common import machine, machine_line, table, write_record
from onepair.demo import EXAMPLE, HELD_OUT, TARGETS, attack

COLUMNS = [
    "target",
    "budget_s",
    "steps",
    "psnr",
    "ssim",
    "floor_psnr",
    "val_psnr",
    "val_floor_psnr",
    "fit_s",
]


def measure(spec: str, seconds: float, size: int, seed: int) -> dict:
    """One fit of ``seconds`` on the example, evaluated on the held-out images."""
    _, imitator, evaluation = attack(spec, seconds, size, seed)
    return {
        "target": spec,
        "budget_s": seconds,
        "steps": imitator.metrics["steps"],
        "psnr": evaluation.mean("psnr"),
        "psnr_std": evaluation.std("psnr"),
        "ssim": evaluation.mean("ssim"),
        "floor_psnr": evaluation.mean("floor_psnr"),
        "floor_ssim": evaluation.mean("floor_ssim"),
        "val_psnr": imitator.metrics["val_psnr"],
        "val_floor_psnr": imitator.metrics["val_floor_psnr"],
        "fit_s": imitator.metrics["seconds"],  # wall time of the fit, set-up included
        "device": imitator.metrics["device"],
        "per_image_psnr": {r.image: r.psnr for r in evaluation.rows},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[15, 30, 60, 120],
        help="fit time budgets in seconds",
    )
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), help="target specs")
    parser.add_argument("--size", type=int, default=256, help="side of the central crops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", default="bench-out", help="folder for fidelity.json")
    args = parser.parse_args(argv)

    info = machine()
    print(machine_line(info), flush=True)
    rows = []
    for spec in args.targets:
        for seconds in args.budgets:
            row = measure(spec, seconds, args.size, args.seed)
            rows.append(row)
            print(
                f"fidelity  {spec}  {seconds:g} s: {row['psnr']:.2f} dB "
                f"(floor {row['floor_psnr']:.2f} dB, {row['steps']} steps)",
                flush=True,
            )
    record = {
        "benchmark": "fidelity",
        "machine": info,
        "settings": {
            "preset": "default",
            "example": f"builtin:{EXAMPLE}",
            "held_out": [f"builtin:{n}" for n in HELD_OUT],
            **vars(args),
        },
        "rows": rows,
    }
    path = write_record(args.out, "fidelity", record)
    print(table(rows, COLUMNS))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
