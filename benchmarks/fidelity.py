"""Held-out fidelity of one-pair imitation on hard targets, per recipe, budget and seed.

For each target, recipe, example size, time budget and seed: one pair made from
one image (the zoo's example: the central crop of builtin:astronaut, or the
top-left quadrant of builtin:ihc), one fit of the recipe for that wall time on
this machine, then PSNR/SSIM of the imitation against the target's output on
the held-out images (the zoo's: four other photographs, or the other three
quadrants), always at ``--held-out-size``, beside the floor (the input itself
against the target's output). Where the fit found the target equivariant to
flips and rotations (``augment``), the self-ensemble over them is measured too.
Imitations are applied as ``onepair apply`` applies them (``precision="auto"``:
bfloat16 on a CPU with bfloat16 units, AMX or AVX-512 BF16); where that is not
float32, ``psnr_float32`` is the same imitator applied in float32.

A recipe is a preset name, optionally with fields of its imitator or fit
changed: ``default``, ``first-default``, ``default:width=16,augment=none``;
or ``auto`` (``auto:augment=auto``): ``onepair fit --auto`` with the default's
fit settings, which chooses among its candidate imitators on the held-out blocks.
Target outputs are cached (``--cache``): MAXIM takes minutes to load.

    python benchmarks/fidelity.py -o bench-out                       # everything: hours
    python benchmarks/fidelity.py --targets "noise:sigma=25|maxim" \\
        --recipes first-default default --budgets 900 --seeds 0 -o bench-out

``--examples 2`` adds a second pair from another photograph (``EXTRA_EXAMPLES``, the
central crop of the same side, noise of its own), fitted together with the first: how
fidelity scales with a second example, beside ``--sizes`` for a larger first one.

``--cross-check SECONDS`` adds the cross-region estimate of every fit
(:mod:`onepair.crosscheck`: four more fits of SECONDS each, on three quadrants of
the example, measured on the fourth) beside the held-out blocks' ``val_psnr``; both
are estimates of ``psnr`` made without the held-out images.

``--resume`` keeps the rows already in ``OUT/fidelity.json`` and runs the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from common import machine, machine_line, recipe, table, write_record
from onepair.auto import auto_fit
from onepair.crosscheck import cross_check
from onepair.evaluate import model_input
from onepair.fit import fit
from onepair.metrics import psnr, ssim
from onepair.pairs import Pair, baseline
from onepair.samples import sample
from onepair.targets import load_target
from onepair.tiling import resolve_precision
from zoo import images

HARD_TARGETS = {  # spec: the zoo's image kind
    "noise:sigma=25|maxim": "photo",
    "noise:sigma=15|maxim": "photo",
    "noise:sigma=25|teacher-denoiser": "photo",
    "hematoxylin|teacher-stain": "ihc",
    "noise:sigma=25|nl-means": "photo",
    "noise:sigma=25|bm3d": "photo",
    "realesr-animevideov3-x2": "photo",
}
# further examples for --examples, by image kind: photographs none of the held-out ones
EXTRA_EXAMPLES = {"photo": ("motorcycle",)}
COLUMNS = [
    "target",
    "recipe",
    "size",
    "examples",
    "budget_s",
    "seeds",
    "psnr",
    "psnr_ens",
    "floor_psnr",
    "val_psnr",
    "cross_psnr",
    "ssim",
    "steps",
]


def cached_pairs(spec: str, kind: str, size: int, held_size: int, seed: int, cache: Path):
    """The example pair and the held-out (name, input, output) triples, queried once."""
    key = hashlib.sha256(json.dumps([spec, kind, size, held_size, seed]).encode()).hexdigest()
    path = cache / f"{key[:16]}.npz"
    if path.is_file():
        data = np.load(path)
        names = [str(n) for n in data["names"]]
        held = [(n, data[f"x_{n}"], data[f"y_{n}"]) for n in names]
        return Pair.of(data["x"], data["y"]), held
    target = load_target(spec)
    example, others = images(kind, size, held_size)
    x = target.degrade(example, seed)
    y = target(x)
    held = []
    for index, (name, clean) in enumerate(others.items()):
        # as evaluate() makes them (gray photographs repeated to RGB), with noise seeds
        # the example never saw
        hx = model_input(target, clean, x.shape[2], 1000 + index, name)
        held.append((name, hx, target(hx)))
    cache.mkdir(parents=True, exist_ok=True)
    arrays = {f"{k}_{n}": v for n, hx, hy in held for k, v in (("x", hx), ("y", hy))}
    np.savez(path, x=x, y=y, names=np.array([n for n, _, _ in held]), **arrays)
    return Pair.of(x, y), held


def extra_pairs(spec: str, kind: str, size: int, examples: int, cache: Path) -> list[Pair]:
    """The pairs beyond the first for ``examples`` in all, queried once."""
    names = EXTRA_EXAMPLES.get(kind, ())
    if examples - 1 > len(names):
        raise ValueError(
            f"--examples {examples}: {kind!r} targets have {len(names) + 1} example image(s)"
        )
    pairs = []
    for index, name in enumerate(names[: examples - 1]):
        key = hashlib.sha256(json.dumps([spec, name, size]).encode()).hexdigest()
        path = cache / f"extra-{key[:16]}.npz"
        if not path.is_file():
            target = load_target(spec)
            x = target.degrade(sample(name, size), 2000 + index)  # noise of its own
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(path, x=x, y=target(x))
        data = np.load(path)
        pairs.append(Pair.of(data["x"], data["y"]))
    return pairs


def score(imitator, held, ensemble: bool, precision: str = "auto") -> dict:
    """Mean PSNR/SSIM of the imitation against the target on the held-out images."""
    rows = []
    for name, x, y in held:
        z = np.clip(imitator.apply(x, ensemble=ensemble, precision=precision), 0.0, 1.0)
        floor = baseline(x, y)
        rows.append(
            {
                "image": name,
                "psnr": psnr(z, y),
                "ssim": ssim(z, y),
                "floor_psnr": psnr(floor, y) if floor is not None else None,
            }
        )
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "ssim")}
    floors = [r["floor_psnr"] for r in rows if r["floor_psnr"] is not None]
    out["floor_psnr"] = float(np.mean(floors)) if floors else None
    out["psnr_std"] = float(np.std([r["psnr"] for r in rows]))
    out["per_image_psnr"] = {r["image"]: r["psnr"] for r in rows}
    return out


def measure(
    spec, kind, text, size, held_size, seconds, seed, cache, examples=1, cross=None
) -> dict:
    pair, held = cached_pairs(spec, kind, size, held_size, 0, cache)
    pairs = [pair, *extra_pairs(spec, kind, size, examples, cache)]
    name, _, changes = text.partition(":")
    chooses = name == "auto"
    model, config = recipe(
        f"default:{changes}" if chooses else text, pair.in_channels, pair.out_channels, pair.scale
    )
    config = replace(config, seconds=seconds, steps=10**9, seed=seed)
    if chooses:
        imitator = auto_fit(pairs, config, show_progress=False)
    else:
        imitator = fit(pairs, model, config, show_progress=False)
    plain = score(imitator, held, ensemble=False)
    computes = resolve_precision("auto", imitator.device)
    exact = score(imitator, held, False, "float32") if computes != torch.float32 else plain
    transforms = imitator.equivariances
    ensemble = score(imitator, held, ensemble=True) if len(transforms) > 1 else None
    crossed = cross_check(pairs, imitator.model, config, cross) if cross else None
    return {
        "target": spec,
        "recipe": text,
        "size": size,
        "examples": examples,
        "held_out_size": held_size,
        "budget_s": seconds,
        "seed": seed,
        **plain,
        "precision": str(computes).removeprefix("torch."),  # what apply computed in
        "psnr_float32": exact["psnr"],  # the same imitator applied in float32
        "psnr_ens": ensemble["psnr"] if ensemble else None,
        "ssim_ens": ensemble["ssim"] if ensemble else None,
        "augment": transforms,
        "equivariance_psnr": imitator.metrics.get("equivariance_psnr"),
        "val_psnr": imitator.metrics["val_psnr"],
        "val_floor_psnr": imitator.metrics["val_floor_psnr"],
        "cross_psnr": crossed["psnr"] if crossed else None,  # the cross-region estimate
        "cross_folds": crossed["folds"] if crossed else None,
        "steps": imitator.metrics["steps"],
        "fit_s": imitator.metrics["seconds"],
        "num_params": imitator.metrics["num_params"],
        "auto": imitator.metrics.get("auto"),
    }


def summary(rows: list[dict]) -> list[dict]:
    """Rows grouped over seeds: mean (and spread) of each figure."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["target"], r["recipe"], r["size"], r.get("examples", 1), r["budget_s"])
        groups.setdefault(key, []).append(r)
    out = []
    for (target, text, size, examples, budget), group in groups.items():
        mean = {
            k: float(np.mean([g[k] for g in group]))
            if all(g.get(k) is not None for g in group)
            else None
            for k in ("psnr", "psnr_ens", "floor_psnr", "val_psnr", "cross_psnr", "ssim", "steps")
        }
        spread = float(np.std([g["psnr"] for g in group]))
        out.append(
            {
                "target": target,
                "recipe": text,
                "size": size,
                "examples": examples,
                "budget_s": budget,
                "seeds": len(group),
                **mean,
                "psnr_seed_std": spread,
            }
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(HARD_TARGETS))
    parser.add_argument("--recipes", nargs="+", default=["first-default", "default"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[120, 300, 900])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256], help="example sides")
    parser.add_argument(
        "--examples", type=int, default=1, help="pairs to fit on (2: a second photograph)"
    )
    parser.add_argument("--held-out-size", type=int, default=256)
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/onepair/fidelity", help="queries"
    )
    parser.add_argument(
        "--cross-check",
        type=float,
        default=None,
        metavar="SECONDS",
        help="also the cross-region estimate, four fits of SECONDS each (onepair.crosscheck)",
    )
    parser.add_argument("--resume", action="store_true", help="keep rows already measured")
    parser.add_argument("-o", "--out", default="bench-out", help="folder for fidelity.json")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error(f"--examples must be 1 or more, not {args.examples}")

    info = machine()
    print(machine_line(info), flush=True)
    path = Path(args.out) / "fidelity.json"
    rows = json.loads(path.read_text())["rows"] if args.resume and path.is_file() else []
    skipped: dict[str, str] = {}
    n = args.examples
    done = {
        (r["target"], r["recipe"], r["size"], r.get("examples", 1), r["budget_s"], r["seed"])
        for r in rows
    }
    for spec in args.targets:
        kind = HARD_TARGETS.get(spec, "photo")
        for size in args.sizes:
            for text in args.recipes:
                for seconds in args.budgets:
                    for seed in args.seeds:
                        if (spec, text, size, n, seconds, seed) in done or spec in skipped:
                            continue
                        started = time.perf_counter()
                        try:
                            row = measure(
                                spec, kind, text, size, args.held_out_size, seconds, seed,
                                args.cache, n, args.cross_check,
                            )  # fmt: skip
                        except (ValueError, ImportError, FileNotFoundError) as error:
                            skipped[spec] = str(error).splitlines()[0][:300]
                            print(f"fidelity  {spec}: skipped: {skipped[spec]}", flush=True)
                            continue
                        rows.append(row)
                        ens = f", ensemble {row['psnr_ens']:.2f}" if row["psnr_ens"] else ""
                        if row["auto"]:
                            ens += f", chose {row['auto']['chosen']}"
                        if row["cross_psnr"] is not None:
                            ens += f", cross-check {row['cross_psnr']:.2f}"
                        print(
                            f"fidelity  {spec}  {text}  {size}px x {n}  {seconds:g} s  "
                            f"seed {seed}: "
                            f"{row['psnr']:.2f} dB{ens} (floor {row['floor_psnr']:.2f}, "
                            f"val {row['val_psnr']:.2f}, {row['steps']} steps, "
                            f"{time.perf_counter() - started:.0f} s in all)",
                            flush=True,
                        )
                        record = {
                            "benchmark": "fidelity",
                            "machine": info,
                            "settings": {**vars(args), "cache": str(args.cache)},
                            "rows": rows,
                            "skipped": skipped,
                        }
                        write_record(args.out, "fidelity", record)  # nothing lost if stopped
    record = {
        "benchmark": "fidelity",
        "machine": info,
        "settings": {**vars(args), "cache": str(args.cache)},
        "rows": rows,
        "summary": summary(rows),
        "skipped": skipped,
    }
    path = write_record(args.out, "fidelity", record)
    print(table(record["summary"], COLUMNS))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
