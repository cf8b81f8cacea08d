"""The ``paper-prototype`` preset against ``default``: held-out PSNR over time.

Both presets fit the same pair in the same process with the same time budget
and a dense validation history: a short timed probe fit picks ``val_every``
for ``--points`` held-out measurements (at most every ``--val-every``
steps; a budget of fewer steps than that gets one per step). From the curves:

- ``P_proto``: the best held-out-block PSNR the prototype reaches (what its fit keeps);
- the time the prototype takes to first reach ``P_proto``;
- the time ``default`` takes to first reach ``P_proto``, and the ratio of the two.

Times are on the fit call's clock: the loop's own clock plus the set-up before
it (building the network, solving the linear path), taken as the fit's wall
time minus its loop time. Both imitators are also evaluated on the demo's
held-out photographs.

    python benchmarks/prototype.py --seconds 120 -o bench-out
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from common import cell, machine, machine_line, table, write_record
from onepair.demo import EXAMPLE, HELD_OUT
from onepair.evaluate import evaluate
from onepair.fit import fit
from onepair.imitator import Imitator
from onepair.pairs import Pair
from onepair.presets import preset
from onepair.samples import sample
from onepair.targets import SpecTarget, load_target

PRESETS = ("paper-prototype", "default")
COLUMNS = [
    "preset",
    "steps",
    "val_every",
    "points",
    "setup_s",
    "best_val_psnr",
    "time_to_p_proto_s",
    "test_psnr",
    "test_floor_psnr",
]


def seconds_per_step(pair: Pair, name: str, seconds: float, seed: int) -> float:
    """Training cost of one step of preset ``name``, from a short fit (at least one step)
    of ``seconds`` without validation."""
    model, config = preset(name, pair.in_channels, pair.out_channels, pair.scale)
    config = replace(config, steps=10**9, seconds=seconds, val_every=10**9, seed=seed)
    probe = fit(pair, model, config, show_progress=False)
    return probe.metrics["seconds"] / max(probe.metrics["steps"], 1)


def curve(imitator: Imitator, setup: float) -> list[tuple[float, float]]:
    """(seconds on the fit call's clock, held-out-block PSNR) for every validation, in order."""
    points = [(setup + r["seconds"], r["val_psnr"]) for r in imitator.history if "val_psnr" in r]
    best = imitator.metrics["val_psnr"]
    if best is not None and (not points or best > max(p for _, p in points)):
        points.append((setup + imitator.metrics["seconds"], best))  # the unlogged final check
    return points


def first_reach(points: list[tuple[float, float]], level: float) -> float | None:
    """The first time the curve reaches ``level``; None if it never does."""
    return next((t for t, p in points if p >= level), None)


def run_preset(pair: Pair, name: str, args: argparse.Namespace, target: SpecTarget) -> dict:
    step_cost = seconds_per_step(pair, name, args.seconds * args.probe, args.seed)
    expected = int(args.seconds / step_cost)
    val_every = max(1, min(args.val_every, expected // args.points))
    model, config = preset(name, pair.in_channels, pair.out_channels, pair.scale)
    config = replace(config, seconds=args.seconds, steps=10**9, val_every=val_every, seed=args.seed)
    start = time.perf_counter()
    imitator = fit(pair, model, config, show_progress=False)
    wall = time.perf_counter() - start
    setup = wall - imitator.metrics["seconds"]
    held_out = [sample(n, args.size) for n in HELD_OUT]
    evaluation = evaluate(imitator, target, held_out, names=list(HELD_OUT))
    points = curve(imitator, setup)
    return {
        "preset": name,
        "steps": imitator.metrics["steps"],
        "probe_seconds_per_step": step_cost,
        "val_every": val_every,
        "points": len(points),
        "setup_s": setup,
        "fit_wall_s": wall,
        "best_val_psnr": imitator.metrics["val_psnr"],
        "val_floor_psnr": imitator.metrics["val_floor_psnr"],
        "test_psnr": evaluation.mean("psnr"),
        "test_ssim": evaluation.mean("ssim"),
        "test_floor_psnr": evaluation.mean("floor_psnr"),
        "num_params": imitator.metrics["num_params"],
        "receptive_field": imitator.metrics["receptive_field"],
        "device": imitator.metrics["device"],
        "curve": [{"seconds": t, "val_psnr": p} for t, p in points],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="noise:sigma=25|tv-denoise:weight=0.1")
    parser.add_argument("--seconds", type=float, default=180.0, help="fit budget for each preset")
    parser.add_argument("--points", type=int, default=30, help="validations wanted per curve")
    parser.add_argument("--val-every", type=int, default=10, help="validation interval at most")
    parser.add_argument(
        "--probe",
        type=float,
        default=0.05,
        help="fraction of --seconds spent timing steps to pick val_every",
    )
    parser.add_argument("--size", type=int, default=256, help="side of the central crops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", default="bench-out", help="folder for prototype.json")
    args = parser.parse_args(argv)

    info = machine()
    print(machine_line(info), flush=True)
    target = load_target(args.target)
    x = target.degrade(sample(EXAMPLE, args.size), args.seed)
    pair = Pair.of(x, target(x))
    rows = []
    for name in PRESETS:
        row = run_preset(pair, name, args, target)
        rows.append(row)
        print(
            f"prototype  {name}: best held-out {row['best_val_psnr']:.2f} dB, "
            f"test {row['test_psnr']:.2f} dB, {row['steps']} steps, "
            f"{row['points']} validations",
            flush=True,
        )
    proto, default = rows
    p_proto = proto["best_val_psnr"]
    for row in rows:
        points = [(c["seconds"], c["val_psnr"]) for c in row["curve"]]
        row["time_to_p_proto_s"] = first_reach(points, p_proto)
    t_proto, t_default = proto["time_to_p_proto_s"], default["time_to_p_proto_s"]
    record = {
        "benchmark": "prototype",
        "machine": info,
        "settings": {
            "example": f"builtin:{EXAMPLE}",
            "held_out": [f"builtin:{n}" for n in HELD_OUT],
            **vars(args),
        },
        "p_proto": p_proto,
        "prototype_time_to_p_proto_s": t_proto,
        "default_time_to_p_proto_s": t_default,
        "ratio_prototype_over_default": t_proto / t_default if t_default else None,
        "rows": rows,
    }
    path = write_record(args.out, "prototype", record)
    print(table(rows, COLUMNS))
    print(
        f"P_proto {p_proto:.2f} dB: prototype reaches it at {cell(t_proto)} s, default at "
        f"{cell(t_default)} s (- = never); ratio {cell(record['ratio_prototype_over_default'])}"
    )
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
