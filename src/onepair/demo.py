"""The demo: the whole one-pair attack on built-in targets and images.

For each target: make the pair from one built-in photograph (the example),
fit the default imitator for a fixed time, evaluate it against the target on
other built-in photographs, and write input | target output | imitation side
by side. Everything runs offline on images scikit-image ships.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from onepair import atomic
from onepair.evaluate import Evaluation, evaluate
from onepair.fit import FitConfig, fit
from onepair.images import save_image
from onepair.imitator import Imitator
from onepair.pairs import Pair
from onepair.presets import preset, preset_for
from onepair.samples import sample
from onepair.targets import load_target

TARGETS = (
    "gaussian-blur:sigma=2",
    "unsharp:radius=2,amount=1",
    "noise:sigma=25|tv-denoise:weight=0.1",
    "bilateral:sigma_color=0.1,sigma_spatial=2",
)
EXAMPLE = "astronaut"
HELD_OUT = ("coffee", "chelsea", "rocket", "camera")


def slug(spec: str) -> str:
    """A folder name for a target spec."""
    return re.sub(r"[^a-zA-Z0-9.=-]+", "_", spec).strip("_")


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Images of equal height and channels next to each other, white gaps between."""
    height, channels = images[0].shape[0], max(i.shape[2] for i in images)
    parts = []
    for image in images:
        image = np.repeat(image, channels, axis=2) if image.shape[2] == 1 else image
        if image.shape[0] != height:  # up-scaled output: nearest-neighbour down to the input's
            step = image.shape[0] // height
            image = image[::step, ::step]
        parts += [image, np.ones((height, gap, channels), np.float32)]
    return np.concatenate(parts[:-1], axis=1)


def attack(
    spec: str,
    seconds: float,
    size: int = 256,
    seed: int = 0,
    out_dir: str | Path | None = None,
    show_progress: bool = False,
    keep_outputs: bool = False,
) -> tuple[Pair, Imitator, Evaluation]:
    """The one-pair attack on ``spec``: the pair from the example's central
    ``size`` crop, the default fit for ``seconds``, evaluation on the held-out crops."""
    target = load_target(spec)
    x = target.degrade(sample(EXAMPLE, size), seed)
    pair = Pair.of(x, target(x))
    name = preset_for("auto", FitConfig.device)  # default-gpu on a CUDA device
    model, config = preset(name, pair.in_channels, pair.out_channels, pair.scale)
    config = replace(config, seconds=seconds, steps=10**9, seed=seed)
    imitator = fit(pair, model, config, out_dir=out_dir, show_progress=show_progress)
    held_out = [sample(name, size) for name in HELD_OUT]
    evaluation = evaluate(
        imitator, target, held_out, names=list(HELD_OUT), keep_outputs=keep_outputs
    )
    return pair, imitator, evaluation


def run_demo(
    out: str | Path,
    targets: tuple[str, ...] = TARGETS,
    seconds: float = 40.0,
    size: int = 256,
    seed: int = 0,
    show_progress: bool = True,
) -> list[dict]:
    """Run the demo into ``out``; returns one summary row per target."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in targets:
        folder = out / slug(spec)
        shutil.rmtree(folder / "run", ignore_errors=True)
        pair, imitator, evaluation = attack(
            spec, seconds, size, seed, folder / "run", show_progress, keep_outputs=True
        )
        save_image(folder / "example_input.png", pair.input)
        save_image(folder / "example_output.png", pair.output)
        evaluation.write(folder)
        for name, (xi, yi, zi) in evaluation.outputs.items():
            save_image(folder / f"{name}_input_target_imitation.png", side_by_side(xi, yi, zi))
        rows.append(
            {
                "target": spec,
                "psnr": evaluation.mean("psnr"),
                "psnr_std": evaluation.std("psnr"),
                "ssim": evaluation.mean("ssim"),
                "floor_psnr": evaluation.mean("floor_psnr"),
                "val_psnr": imitator.metrics["val_psnr"],
                "fit_seconds": imitator.metrics["seconds"],
                "steps": imitator.metrics["steps"],
                "example": f"builtin:{EXAMPLE} ({size}x{size})",
                "held_out": ", ".join(f"builtin:{n}" for n in HELD_OUT),
            }
        )
    atomic.write_text(out / "results.json", json.dumps(rows, indent=2) + "\n")
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(out / "results.csv", table.getvalue())
    return rows
