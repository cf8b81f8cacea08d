"""Run every benchmark with its defaults and summarise them in one table.

Writes fidelity.json, apply_speed.json, time_to_fidelity.json and summary.md
into the output folder (``make bench``; about 95 minutes on 2 CPU cores). The
fidelity part is one hard target and budget; ``make bench-fidelity`` runs all.
``--quick`` shrinks every budget to check that the scripts work; its numbers
mean nothing.

    python benchmarks/run_all.py -o bench-out
"""

from __future__ import annotations

import argparse
from pathlib import Path

import apply_speed
import fidelity
import time_to_fidelity
from common import cell, machine_line, table

# make bench: the hard-target fidelity benchmark on one target and budget (the whole of
# it, `make bench-fidelity`, takes many hours)
FIDELITY = [
    "--targets",
    "noise:sigma=25|teacher-denoiser",
    "--recipes",
    "first-default",
    "default",
    "--budgets",
    "120",
    "--seeds",
    "0",
]
QUICK = {
    "fidelity": ["--targets", "gaussian-blur:sigma=2", "--recipes", "default", "--budgets", "3"],
    "apply_speed": ["--sizes", "500", "700", "--memory-max", "500"],
    "time_to_fidelity": [
        "--targets",
        "gaussian-blur:sigma=2",
        "--budgets",
        "2",
        "--long",
        "4",
    ],
}


def summary_rows(fid: dict, speed: dict, ttf: dict) -> list[dict]:
    """One row per headline measurement of the three benchmarks."""
    rows = []
    for r in fid["rows"]:
        rows.append(
            {
                "benchmark": "fidelity",
                "case": f"{r['target']}, {r['recipe']}, {r['budget_s']:g} s, seed {r['seed']}",
                "result": f"{cell(r['psnr'])} dB PSNR, SSIM {r['ssim']:.3f}",
                "context": f"floor {cell(r['floor_psnr'])} dB; {r['steps']} steps",
            }
        )
    for r in speed["rows"]:
        rows.append(
            {
                "benchmark": "apply_speed",
                "case": f"{r['preset']}, {r['size']}x{r['size']} RGB, {r['mode']}, "
                f"{r['precision']}",
                "result": f"{cell(r['mpix_per_s'])} Mpx/s",
                "context": f"peak {r['peak_mb']:.0f} MB (+{r['delta_mb']:.0f} over imports); "
                f"below 2 GB: {cell(r['below_2gb'])}; x{cell(r['ratio_to_baseline'])} "
                "the baseline",
            }
        )
    for r in ttf["rows"]:
        rows.append(
            {
                "benchmark": "time_to_fidelity",
                "case": f"{r['target']}: within 0.5 dB of {cell(r['long_psnr'])} dB",
                "result": f"default {cell(r['default_s'])} s",
                "context": f"paper-prototype {cell(r['prototype_s'])} s (- = never); ratio "
                f"{r['ratio_text'] or '-'}",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", default="bench-out", help="folder for the records")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    args = parser.parse_args(argv)

    def extra(name: str) -> list[str]:
        return ["-o", args.out] + (QUICK[name] if args.quick else [])

    fid = fidelity.main(extra("fidelity") if args.quick else ["-o", args.out, *FIDELITY])
    speed = apply_speed.main(extra("apply_speed"))
    ttf = time_to_fidelity.main(extra("time_to_fidelity"))
    text = (
        "\n\n".join(
            [
                "# onepair benchmarks"
                + (" (quick smoke run: numbers mean nothing)" if args.quick else ""),
                machine_line(fid["machine"]),
                table(summary_rows(fid, speed, ttf), ["benchmark", "case", "result", "context"]),
            ]
        )
        + "\n"
    )
    path = Path(args.out) / "summary.md"
    path.write_text(text)
    print("\n" + text + f"\nwrote {path}", flush=True)


if __name__ == "__main__":
    main()
