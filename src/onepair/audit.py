"""The owner's audit: how copyable does one published example leave a model?

``run_audit(spec, example, out)`` reads top to bottom as the report does:

1. query the target on the example (the pair the owner would publish) and on
   the held-out images (what an attacker would apply the copy to);
2. fit imitators of several kinds and sizes on the pair, measuring held-out fidelity
   against training time as they train;
3. measure the effective receptive field of the target and of the best copy;
4. for each defence: publish the defended pair, fit a copy on it, measure its
   fidelity against the true target, the owner's cost, and whether the
   defence's signature shows in the copy;
5. write ``report.json`` and the self-contained ``report.html``.

Every finished step is a file under ``OUT/state`` (written atomically), and
fits write checkpoints under ``OUT/runs``: an interrupted audit, run again
with the same settings, resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onepair import atomic
from onepair import audit_steps as steps
from onepair.defenses import Defense, sweep
from onepair.fit import FitConfig
from onepair.images import save_image
from onepair.imitator import Imitator, version
from onepair.metrics import psnr
from onepair.models import FilterConfig, ModelConfig, UNetConfig, config_to_dict
from onepair.pairs import Pair, baseline
from onepair.presets import PRESETS
from onepair.samples import read
from onepair.targets import SpecTarget, load_target, redact
from onepair.verdict import verdict

HELD_OUT = ("builtin:coffee", "builtin:chelsea", "builtin:rocket", "builtin:camera")
IMITATORS: tuple[tuple[str, str, ModelConfig], ...] = (
    ("small", "U-Net, 2 levels, 8 channels (onepair's default until 2026-11-29)", UNetConfig()),
    ("medium", "U-Net, 3 levels, 16 channels", UNetConfig(depth=3, width=16)),
    ("large", "U-Net, 3 levels, 32 channels", UNetConfig(depth=3, width=32)),
    # no network: copies some denoisers better than every U-Net (docs/FIDELITY.md)
    ("filters", "adaptive linear path, no network (two stages of blended filters)", FilterConfig()),
    # onepair's default: the path corrected by a small CNN shared across colour channels;
    # after 2 minutes a better copy than the U-Nets and the path alone of every hard
    # target of the fidelity benchmark but one (the staining teacher, where channels differ
    # and it is `filters`' path, so this copy repeats the one above), though not of every
    # pair (the NL-means audit in docs/AUDIT.md, at 60 s)
    (
        "refined",
        "adaptive linear path and a light refiner shared across colour channels (the default)",
        PRESETS["default"][0],
    ),
)


@dataclass(frozen=True)
class AuditConfig:
    """What the audit does; the defaults finish in about 11 minutes on 2 CPU cores."""

    seconds: float = 60.0  # fit time of each imitator
    defense_seconds: float = 20.0  # fit time of each copy in the defence sweep
    defenses: tuple[Defense, ...] | None = None  # None: the default sweep
    held_out: tuple[str, ...] = HELD_OUT
    held_out_size: int = 256  # central crops; the watermark detector needs 256 x 256
    imitators: tuple[tuple[str, str, ModelConfig], ...] = IMITATORS
    defense_model: ModelConfig = field(default_factory=UNetConfig)
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=10**9))
    erf_count: int = 8
    erf_size: int = 96
    max_cost: float = 35.0  # dB: the published output must stay this close to the true one
    seed: int = 0

    def settings(self) -> dict[str, Any]:
        """JSON form, compared on resumption."""
        data = asdict(self)
        data["defenses"] = None if self.defenses is None else [d.label for d in self.defenses]
        data["imitators"] = [[n, d, config_to_dict(m)] for n, d, m in self.imitators]
        data["defense_model"] = config_to_dict(self.defense_model)
        data["fit"] = {k: str(v) for k, v in asdict(self.fit).items()}
        return data


class Store:
    """The audit folder: finished steps as JSON and arrays, written atomically."""

    def __init__(self, out: Path, settings: dict[str, Any]):
        self.out, self.state = out, out / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        (out / "images").mkdir(exist_ok=True)
        settings = json.loads(json.dumps(settings))  # tuples as lists, as they are read back
        saved = self.get("settings")
        if saved is not None and saved != settings:
            changed = sorted(k for k in settings if saved.get(k) != settings[k])
            raise ValueError(
                f"{out} holds an audit with other settings ({', '.join(changed)}); "
                "run it with the same settings to resume, or choose another folder"
            )
        self.put("settings", settings)

    def get(self, key: str) -> Any:
        path = self.state / f"{key}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, key: str, value: Any) -> Any:
        atomic.write_text(self.state / f"{key}.json", json.dumps(value, indent=1) + "\n")
        return value

    def arrays(self, key: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.state / f"{key}.npz"
        if not path.is_file():
            import io

            buffer = io.BytesIO()
            np.savez(buffer, **make())
            atomic.write_bytes(path, buffer.getvalue())
        with np.load(path) as data:
            return {k: data[k] for k in data.files}


def run_audit(
    spec: str | SpecTarget,
    example: str | np.ndarray,
    out: str | Path,
    config: AuditConfig | None = None,
    say: Callable[[str], None] = print,
    show_progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Audit ``spec`` with ``example`` (a path, ``builtin:NAME`` or an image) into ``out``;
    returns the report data (also ``out/report.json``)."""
    from onepair.report import render

    config = config or AuditConfig()
    start = time.perf_counter()
    target = load_target(spec) if isinstance(spec, str) else spec
    out = Path(out)
    store = Store(out, {"target": redact(target.spec), **config.settings()})
    source = example if isinstance(example, str) else "array"
    say(f"[1/5] querying the target on the example and {len(config.held_out)} held-out images")
    pair, held = _query(target, example, config, store)
    save_image(out / "images/example_input.png", pair.input)
    save_image(out / "images/example_output.png", pair.output)

    say(f"[2/5] fitting {len(config.imitators)} imitators, {config.seconds:g} s each")
    imitators = [
        steps.attack(pair, held, name, text, model, config, store, show_progress)
        for name, text, model in config.imitators
    ]
    best = max(imitators, key=lambda row: row["psnr"])
    copy = Imitator.load(out / "runs" / steps.slug(best["name"]))
    samples = steps.samples(copy, held, out)

    say("[3/5] measuring effective receptive fields")
    erf = steps.erf(target, copy, pair.input.shape[2], config, store, out)

    defenses = list(config.defenses) if config.defenses else sweep(pair.out_channels)
    if defenses[0].name != "none":
        defenses.insert(0, Defense("none"))
    say(f"[4/5] {len(defenses)} defences, a copy fitted for {config.defense_seconds:g} s on each")
    rows, control = [], None
    for i, defense in enumerate(defenses, 1):
        say(f"  ({i}/{len(defenses)}) {defense.label}")
        row, outputs = steps.defend(pair, held, defense, control, config, store, show_progress)
        control = outputs if defense.name == "none" else control
        rows.append(row)

    say("[5/5] writing the report")
    floors = [psnr(b, y) for x, y in held.values() if (b := baseline(x, y)) is not None]
    data: dict[str, Any] = {
        "onepair_version": version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "target": redact(target.spec),
        "example": {
            "source": source,
            "height": pair.input.shape[0],
            "width": pair.input.shape[1],
            "in_channels": pair.in_channels,
            "out_channels": pair.out_channels,
            "scale": pair.scale,
            "input": "images/example_input.png",
            "output": "images/example_output.png",
        },
        "held_out": list(config.held_out),
        "queries": store.get("queries") + ((erf or {}).get("queries") or 0),
        "attack": {
            "floor_psnr": float(np.mean(floors)) if floors else None,
            "imitators": imitators,
            "best": best["name"],
            "samples": samples,
        },
        "erf": erf,
        "defenses": rows,
        "settings": {
            "seconds": config.seconds,
            "defense_seconds": config.defense_seconds,
            "held_out_size": config.held_out_size,
            "max_cost": config.max_cost,
            "seed": config.seed,
        },
    }
    data["verdict"] = verdict(data, config.max_cost)
    data["seconds"] = round(time.perf_counter() - start, 1)  # of this run (a resumed one: the rest)
    atomic.write_text(out / "report.json", json.dumps(data, indent=2) + "\n")
    render(data, out)
    return data


def _query(
    target: SpecTarget, example: str | np.ndarray, config: AuditConfig, store: Store
) -> tuple[Pair, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The example pair and the held-out (input, target output) pairs, queried once."""
    queries0 = target.queries

    def example_pair() -> dict[str, np.ndarray]:
        clean = read(example) if isinstance(example, str) else example
        x = target.degrade(clean, config.seed)
        return {"x": x, "y": target(x)}

    def held_out() -> dict[str, np.ndarray]:
        from onepair.evaluate import model_input
        from onepair.samples import crop_center

        arrays = {}
        for i, source in enumerate(config.held_out):
            clean = crop_center(read(source), config.held_out_size)
            x = model_input(target, clean, pair.in_channels, config.seed + 1 + i, source)
            arrays[f"x{i}"], arrays[f"y{i}"] = x, target(x)
        return arrays

    arrays = store.arrays("example", example_pair)
    pair = Pair.of(arrays["x"], arrays["y"])
    arrays = store.arrays("held_out", held_out)
    held = {s: (arrays[f"x{i}"], arrays[f"y{i}"]) for i, s in enumerate(config.held_out)}
    if store.get("queries") is None:
        store.put("queries", target.queries - queries0)
    return pair, held
