"""Time to fidelity: how long the default fit takes to get near what 10 minutes give.

For each target, on one pair (the demo's example, central crop) and the demo's
held-out photographs (queried once, before any fit):

- ``default``: one fit per budget in ``--budgets`` and one of ``--long``
  seconds (the learning-rate schedule follows the budget, so each budget is
  its own fit); held-out PSNR of each. The goal is the long fit's PSNR minus
  ``--within`` dB; the default's time to fidelity is the smallest budget whose
  fit reaches the goal (budgets include the linear solve and set-up).
- ``paper-prototype``: one fit of ``--long`` seconds in the same process on the
  same pair, its held-out PSNR measured at every validation (the measuring is
  not charged to its clock); its time to fidelity is the first time it reaches
  the same goal. If it never does, the ratio is a lower bound (``>``).

    python benchmarks/time_to_fidelity.py -o bench-out            # about 70 minutes
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from common import cell, machine, machine_line, table, write_record
from onepair.audit_steps import copy_outputs, fidelity
from onepair.demo import EXAMPLE, HELD_OUT
from onepair.evaluate import model_input
from onepair.fit import fit
from onepair.metrics import psnr
from onepair.pairs import Pair, baseline
from onepair.presets import preset
from onepair.samples import sample
from onepair.targets import load_target

TARGETS = (
    "gaussian-blur:sigma=2",
    "noise:sigma=25|tv-denoise:weight=0.1",
    "noise:sigma=25|teacher-denoiser",
)
COLUMNS = [
    "target",
    "floor_psnr",
    "long_psnr",
    "goal_psnr",
    "default_s",
    "prototype_s",
    "ratio",
    "prototype_best_psnr",
]


def held_out(target, channels: int, size: int, seed: int) -> dict:
    """name -> (input, target output) for the held-out photographs."""
    held = {}
    for name in HELD_OUT:
        x = model_input(target, sample(name, size), channels, seed, name)
        held[name] = (x, target(x))
    return held


def run_fit(pair: Pair, name: str, seconds: float, seed: int, held: dict, watch_every: int = 0):
    """One fit of preset ``name`` for ``seconds``; returns (held-out fidelity, metrics,
    [(seconds, held-out PSNR)] measured at validations when ``watch_every``)."""
    model, config = preset(name, pair.in_channels, pair.out_channels, pair.scale)
    config = replace(config, seconds=seconds, steps=10**9, seed=seed)
    if watch_every:
        config = replace(config, val_every=watch_every)
    curve: list[tuple[float, float]] = []

    def watch(step: int, elapsed: float, network) -> None:
        device = next(network.parameters()).device
        curve.append((elapsed, fidelity(copy_outputs(network, held, device))["psnr"]))

    start = time.perf_counter()
    imitator = fit(pair, model, config, show_progress=False, watch=watch if watch_every else None)
    setup = (time.perf_counter() - start) - imitator.metrics["seconds"]
    scores = fidelity(copy_outputs(imitator.network, held, imitator.device))
    return scores, imitator.metrics, [(setup + t, p) for t, p in curve]


def measure(spec: str, args: argparse.Namespace) -> dict:
    target = load_target(spec)
    x = target.degrade(sample(EXAMPLE, args.size), args.seed)
    pair = Pair.of(x, target(x))
    held = held_out(target, pair.in_channels, args.size, args.seed)
    floors = [psnr(b, y) for x, y in held.values() if (b := baseline(x, y)) is not None]
    default = []
    for seconds in sorted(args.budgets) + [args.long]:
        scores, metrics, _ = run_fit(pair, "default", seconds, args.seed, held)
        default.append({"budget_s": seconds, "steps": metrics["steps"], **scores})
        print(f"  default {seconds:g} s: {scores['psnr']:.2f} dB", flush=True)
    long_psnr = default[-1]["psnr"]
    goal = long_psnr - args.within
    default_s = next((r["budget_s"] for r in default if r["psnr"] >= goal), None)
    scores, metrics, curve = run_fit(
        pair, "paper-prototype", args.long, args.seed, held, watch_every=args.prototype_every
    )
    prototype_s = next((t for t, p in curve if p >= goal), None)
    best = max([p for _, p in curve] + [scores["psnr"]])
    if prototype_s is None and scores["psnr"] >= goal:
        prototype_s = args.long
    print(f"  prototype {args.long:g} s: {scores['psnr']:.2f} dB (best {best:.2f})", flush=True)
    ratio = None
    if default_s is not None:
        ratio = (prototype_s or args.long) / default_s
    return {
        "target": spec,
        "floor_psnr": sum(floors) / len(floors) if floors else None,
        "long_psnr": long_psnr,
        "goal_psnr": goal,
        "default_s": default_s,
        "prototype_s": prototype_s,
        "prototype_reached": prototype_s is not None,
        "ratio": ratio,
        "ratio_text": None if ratio is None else f"{'' if prototype_s else '> '}{ratio:.1f}",
        "prototype_best_psnr": best,
        "prototype_steps": metrics["steps"],
        "prototype_curve": [{"seconds": t, "psnr": p} for t, p in curve],
        "default_fits": default,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--budgets", type=float, nargs="+", default=[10, 20, 30, 45, 60])
    parser.add_argument("--long", type=float, default=600.0, help="the reference fit's budget")
    parser.add_argument("--within", type=float, default=0.5, help="dB below the long fit")
    parser.add_argument("--prototype-every", type=int, default=5, help="steps between checks")
    parser.add_argument("--size", type=int, default=256, help="side of the central crops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", default="bench-out", help="folder for the JSON record")
    args = parser.parse_args(argv)

    info = machine()
    print(machine_line(info), flush=True)
    rows = []
    for spec in args.targets:
        print(f"time to fidelity: {spec}", flush=True)
        rows.append(measure(spec, args))
        r = rows[-1]
        print(
            f"  goal {r['goal_psnr']:.2f} dB: default {cell(r['default_s'])} s, prototype "
            f"{cell(r['prototype_s'])} s (- = not within {args.long:g} s), ratio "
            f"{r['ratio_text'] or '-'}",
            flush=True,
        )
    record = {
        "benchmark": "time_to_fidelity",
        "machine": info,
        "settings": {
            "example": f"builtin:{EXAMPLE}",
            "held_out": [f"builtin:{n}" for n in HELD_OUT],
            **vars(args),
        },
        "rows": rows,
    }
    path = write_record(args.out, "time_to_fidelity", record)
    print(table([{**r, "ratio": r["ratio_text"]} for r in rows], COLUMNS))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
