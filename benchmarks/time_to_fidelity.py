"""Time to fidelity: how long the default fit takes to get near what 10 minutes give.

For each target, on one pair (the demo's example, central crop) and the demo's
held-out photographs (queried once, before any fit):

- ``default``: one fit per budget in ``--budgets`` and one of ``--long``
  seconds (the learning-rate schedule follows the budget, so each budget is
  its own fit); held-out PSNR of each, and its wall time from the call to the
  fitted imitator (set-up and the linear solve included: a budget shorter than
  the solve still takes the solve's time). The goal is the long fit's PSNR minus
  ``--within`` dB; the default's time to fidelity is the wall time of the
  smallest budget's fit that reaches the goal.
- ``paper-prototype``: one fit of ``--long`` seconds in the same process on the
  same pair, its held-out PSNR measured at every validation (the measuring is
  not charged to its clock); its time to fidelity is the first time it reaches
  the same goal. If it never does, the ratio is a lower bound (``>``).
- ``--recipes``: more recipes (``NAME[:field=value,...]``, as in fidelity.py),
  each fitted for the short budgets only and judged against the first's goal;
  the first recipe (``default`` unless named) sets the goal with its long fit.
  ``--no-prototype`` leaves the prototype out (e.g. on a GPU, whose goals are
  the default's alone).

    python benchmarks/time_to_fidelity.py -o bench-out            # about 70 minutes
    python benchmarks/time_to_fidelity.py --budgets 2 5 --long 45 --no-prototype \
        --recipes default default:batch_size=32 -o bench-out       # a GPU's few minutes
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import cell, machine, machine_line, recipe, table, write_record
from onepair.audit_steps import copy_outputs, fidelity
from onepair.demo import EXAMPLE, HELD_OUT
from onepair.evaluate import model_input
from onepair.fit import fit
from onepair.metrics import psnr
from onepair.pairs import Pair, baseline
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
    "default_text",
    "prototype_s",
    "ratio_text",
    "p_proto",
    "default_to_p_proto_s",
    "prototype_to_p_proto_s",
    "ratio_at_p_proto",
]


def held_out(target, channels: int, size: int, seed: int) -> dict:
    """name -> (input, target output) for the held-out photographs."""
    held = {}
    for name in HELD_OUT:
        x = model_input(target, sample(name, size), channels, seed, name)
        held[name] = (x, target(x))
    return held


def run_fit(pair: Pair, name: str, seconds: float, seed: int, held: dict, watch_every: int = 0):
    """One fit of recipe ``name`` for ``seconds``; returns (held-out fidelity, metrics,
    [(seconds, held-out PSNR)] measured at validations when ``watch_every``, the fit's
    wall seconds less that measuring)."""
    model, config = recipe(name, pair.in_channels, pair.out_channels, pair.scale)
    config = replace(config, seconds=seconds, steps=10**9, seed=seed)
    if watch_every:
        config = replace(config, val_every=watch_every)
    curve: list[tuple[float, float]] = []

    watching = [0.0]  # seconds spent measuring, which the fit's clock leaves out

    def watch(step: int, elapsed: float, network) -> None:
        start = time.perf_counter()
        device = next(network.parameters()).device
        curve.append((elapsed, fidelity(copy_outputs(network, held, device))["psnr"]))
        watching[0] += time.perf_counter() - start

    start = time.perf_counter()
    imitator = fit(pair, model, config, show_progress=False, watch=watch if watch_every else None)
    wall = time.perf_counter() - start - watching[0]
    setup = wall - imitator.metrics["seconds"]
    scores = fidelity(copy_outputs(imitator.network, held, imitator.device))
    return scores, imitator.metrics, [(setup + t, p) for t, p in curve], wall


def warm_up() -> None:
    """One step of a tiny fit, so that no measured fit pays for the device's start-up
    (on a GPU: its context, cuDNN and cuBLAS; a first fit made no step in 5 s)."""
    rng = np.random.default_rng(0)
    x = rng.random((64, 64, 3), dtype=np.float32)
    model, config = recipe("default", 3, 3, 1)
    fit(Pair.of(x, x), model, replace(config, steps=1), show_progress=False)


def example(spec: str, size: int, seed: int) -> tuple[Pair, dict]:
    """The pair (the demo's example, central ``size`` crop) and the held-out photographs."""
    target = load_target(spec)
    x = target.degrade(sample(EXAMPLE, size), seed)
    pair = Pair.of(x, target(x))
    return pair, held_out(target, pair.in_channels, size, seed)


def measure(spec: str, pair: Pair, held: dict, args: argparse.Namespace) -> dict:
    floors = [psnr(b, y) for x, y in held.values() if (b := baseline(x, y)) is not None]

    def fits(text: str, budgets: list[float]) -> list[dict]:
        runs = []
        for seconds in budgets:
            scores, metrics, _, wall = run_fit(pair, text, seconds, args.seed, held)
            runs.append({"budget_s": seconds, "wall_s": wall, "steps": metrics["steps"], **scores})
            psnr = scores["psnr"]
            print(f"  {text} {seconds:g} s ({wall:.1f} s wall): {psnr:.2f} dB", flush=True)
        return runs

    first, *others = args.recipes
    default = fits(first, sorted(args.budgets) + [args.long])
    variants = {text: fits(text, sorted(args.budgets)) for text in others}
    row = {
        "target": spec,
        "recipe": first,
        "floor_psnr": sum(floors) / len(floors) if floors else None,
        "default_fits": default,
        "variants": variants,
    }
    if args.no_prototype:
        return row
    scores, metrics, curve, _ = run_fit(
        pair, "paper-prototype", args.long, args.seed, held, watch_every=args.prototype_every
    )
    print(f"  prototype {args.long:g} s: {scores['psnr']:.2f} dB", flush=True)
    return {
        **row,
        "prototype_final_psnr": scores["psnr"],
        "prototype_steps": metrics["steps"],
        "prototype_curve": [{"seconds": t, "psnr": p} for t, p in curve],
    }


def derive(row: dict, long: float, within: float) -> dict:
    """The comparisons, from a row's measurements (a pure function, rerun by --derive).

    - ``default_s``: the wall seconds of the smallest short budget's fit that reaches
      the long fit's PSNR minus ``within`` (None: none of the short budgets does);
      ``default_budget_s`` its budget. Records made before fits carried ``wall_s``
      give the budget for both;
    - ``prototype_s``: when the prototype's curve first reaches that goal (None: never
      within its ``long`` seconds); ``ratio`` their quotient, a lower bound (``>``)
      when the prototype never gets there;
    - at the prototype's own best PSNR (``p_proto``): the time each needs to reach
      it, the default's as the wall time of its smallest budget that does, and their
      ratio.
    """
    fits = row["default_fits"]
    short, long_fit = fits[:-1], fits[-1]
    goal = long_fit["psnr"] - within

    def first(runs: list[dict], psnr: float) -> dict | None:
        return next((f for f in runs if f["psnr"] >= psnr), None)

    def wall(run: dict | None) -> float | None:
        return None if run is None else run.get("wall_s", run["budget_s"])

    hit = first(short, goal)
    default_s = wall(hit)
    derived = {
        **row,
        "long_psnr": long_fit["psnr"],
        "goal_psnr": goal,
        "default_s": default_s,
        "default_budget_s": hit and hit["budget_s"],
        "default_text": (
            f"{default_s:.1f} s (budget {hit['budget_s']:g} s)"
            if hit
            else f"> {wall(short[-1]):.1f} s (budget {short[-1]['budget_s']:g} s)"
        ),
        "variants_s": {
            text: wall(first(runs, goal)) for text, runs in row.get("variants", {}).items()
        },
    }
    if "prototype_curve" not in row:  # measured with --no-prototype
        return derived
    curve = [(c["seconds"], c["psnr"]) for c in row["prototype_curve"]]
    final = row.get("prototype_final_psnr", row.get("prototype_best_psnr"))  # older records
    curve.append((long, final))
    prototype_s = next((t for t, p in curve if p >= goal), None)
    ratio = None if default_s is None else (prototype_s or long) / default_s
    p_proto = max(p for _, p in curve)
    proto_to_p = next(t for t, p in curve if p >= p_proto)
    default_to_p = wall(first(fits, p_proto))
    return {
        **derived,
        "prototype_s": prototype_s,
        "ratio": ratio,
        "ratio_text": None if ratio is None else f"{'' if prototype_s else '> '}{ratio:.0f}",
        "p_proto": p_proto,
        "prototype_to_p_proto_s": proto_to_p,
        "default_to_p_proto_s": default_to_p,
        "ratio_at_p_proto": proto_to_p / default_to_p if default_to_p else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=["default"],
        help="NAME[:field=value,...]; the first sets the goal with its --long fit",
    )
    parser.add_argument("--no-prototype", action="store_true", help="leave the prototype out")
    parser.add_argument("--budgets", type=float, nargs="+", default=[2, 5, 10, 20, 30, 45, 60])
    parser.add_argument("--long", type=float, default=600.0, help="the reference fit's budget")
    parser.add_argument("--within", type=float, default=0.5, help="dB below the long fit")
    parser.add_argument("--prototype-every", type=int, default=5, help="steps between checks")
    parser.add_argument("--size", type=int, default=256, help="side of the central crops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", default="bench-out", help="folder for the JSON record")
    parser.add_argument(
        "--derive", metavar="JSON", help="recompute the comparisons of a saved record; no fits"
    )
    args = parser.parse_args(argv)
    if args.derive:
        record = json.loads(Path(args.derive).read_text())
        settings = record["settings"]
        record["rows"] = [derive(r, settings["long"], settings["within"]) for r in record["rows"]]
        Path(args.derive).write_text(json.dumps(record, indent=2) + "\n")
        print(table(record["rows"], COLUMNS))
        return record

    info = machine()
    print(machine_line(info), flush=True)
    # every target's pair and held-out outputs before the first fit: a target that cannot
    # load (an untrained teacher, a missing package) stops the run now, not after an hour
    examples = {spec: example(spec, args.size, args.seed) for spec in args.targets}
    warm_up()
    rows: list[dict] = []
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
    for spec, (pair, held) in examples.items():
        print(f"time to fidelity: {spec}", flush=True)
        rows.append(derive(measure(spec, pair, held, args), args.long, args.within))
        path = write_record(args.out, "time_to_fidelity", record)  # each target as it ends
        r = rows[-1]
        last = max(args.budgets)
        others = ", ".join(
            f"{t} {f'{v:.1f} s' if v else f'none within a budget of {last:g} s'}"
            for t, v in r["variants_s"].items()
        )
        print(
            f"  goal {r['goal_psnr']:.2f} dB: {r['recipe']} {r['default_text']}"
            + (f", {others}" if others else ""),
            flush=True,
        )
        if "prototype_s" in r:
            print(
                f"  prototype {cell(r['prototype_s'])} s (- = not within {args.long:g} s), "
                f"ratio {r['ratio_text'] or '-'}; at the prototype's best {r['p_proto']:.2f} "
                f"dB: default {cell(r['default_to_p_proto_s'])} s, prototype "
                f"{r['prototype_to_p_proto_s']:.0f} s",
                flush=True,
            )
    print(table(rows, COLUMNS))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
