"""The audit's steps after querying: fit and measure copies, ERFs, defences.

Each step stores its result through the audit's store (:mod:`onepair.audit`)
and returns it at once when it is already there, so an interrupted audit
resumes; fits resume from their checkpoints under ``OUT/runs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onepair.defenses import Defense, evidence, publish
from onepair.demo import slug
from onepair.fit import Augment, fit
from onepair.images import save_image
from onepair.imitator import Imitator
from onepair.metrics import psnr, ssim
from onepair.models import FilterConfig, ModelConfig
from onepair.pairs import Pair
from onepair.tiling import apply_network

if TYPE_CHECKING:
    from onepair.audit import AuditConfig, Store

CURVE_TIMES = (1, 2, 4, 8, 15, 30, 60, 120, 240, 480)  # seconds at which the copy is measured


def copy_outputs(network: Any, held: dict[str, tuple[np.ndarray, np.ndarray]], device: Any) -> list:
    return [(x, y, apply_network(network, x, device=device, clip=True)) for x, y in held.values()]


def fidelity(outputs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    values = np.array([[psnr(z, y), ssim(z, y)] for _, y, z in outputs])
    return {
        "psnr": float(values[:, 0].mean()),
        "psnr_std": float(values[:, 0].std()),
        "ssim": float(values[:, 1].mean()),
    }


def fit_copy(
    pair: Pair,
    model: ModelConfig,
    seconds: float,
    run: Path,
    config: AuditConfig,
    show_progress: bool,
    watch: Callable | None = None,
) -> Imitator:
    fit_config = replace(config.fit, seconds=seconds, seed=config.seed)
    if isinstance(model, FilterConfig) and fit_config.augment is Augment.NONE:
        # as its preset: the flips and rotations the blocks find are solved on too (seconds),
        # and the better solve kept, so the audit meets the strongest copy (docs/FIDELITY.md)
        fit_config = replace(fit_config, augment=Augment.AUTO)
    return fit(pair, model, fit_config, run, resume=True, show_progress=show_progress, watch=watch)


def attack(
    pair: Pair,
    held: dict[str, tuple[np.ndarray, np.ndarray]],
    name: str,
    text: str,
    model: ModelConfig,
    config: AuditConfig,
    store: Store,
    show_progress: bool,
) -> dict[str, Any]:
    """One imitator size: its fit, its held-out fidelity, and fidelity against time."""
    key = f"attack-{slug(name)}"
    done = store.get(key)
    if done is not None:
        return done
    curve: list[dict[str, float]] = store.get(f"{key}-curve") or []
    times = iter(t for t in CURVE_TIMES if not curve or t > curve[-1]["seconds"])
    due = [next(times, None)]

    def watch(step: int, seconds: float, network: Any) -> None:
        if due[0] is None or seconds < due[0]:
            return
        while due[0] is not None and due[0] <= seconds:
            due[0] = next(times, None)
        device = next(network.parameters()).device
        curve.append(
            {
                "seconds": round(seconds, 2),
                "step": step,
                **fidelity(copy_outputs(network, held, device)),
            }
        )
        store.put(f"{key}-curve", curve)

    imitator = fit_copy(
        pair, model, config.seconds, store.out / "runs" / slug(name), config, show_progress, watch
    )
    scores = fidelity(copy_outputs(imitator.network, held, imitator.device))
    metrics = imitator.metrics
    curve.append({"seconds": round(metrics["seconds"], 2), "step": metrics["steps"], **scores})
    return store.put(
        key,
        {
            "name": name,
            "description": text,
            "num_params": metrics["num_params"],
            "receptive_field": metrics["receptive_field"],
            "fit_seconds": metrics["seconds"],
            "steps": metrics["steps"],
            "val_psnr": metrics["val_psnr"],
            **scores,
            "curve": curve,
        },
    )


def samples(copy: Imitator, held: dict, out: Path) -> list[dict[str, Any]]:
    """Input | target | imitation | amplified error on each held-out image, as PNG files."""
    rows = []
    outputs = copy_outputs(copy.network, held, copy.device)
    for source, (x, y, z) in zip(held, outputs, strict=True):
        name = slug(source.removeprefix("builtin:"))
        error = np.abs(z - y).mean(axis=2, keepdims=True)
        scale = float(min(50.0, max(1.0, np.floor(0.5 / max(np.percentile(error, 99), 1e-6)))))
        files = {}
        for part, image in (
            ("input", x),
            ("target", y),
            ("imitation", z),
            ("error", error * scale),
        ):
            files[part] = f"images/{name}_{part}.png"
            save_image(out / files[part], np.clip(image, 0, 1))
        rows.append(
            {"name": source, "psnr": psnr(z, y), "ssim": ssim(z, y), **files, "error_scale": scale}
        )
    return rows


def erf(
    target: Callable, copy: Imitator, channels: int, config: AuditConfig, store: Store, out: Path
):
    """Black-box ERF of the target and of the best copy, with heat maps; None if it fails."""
    from onepair.erf import black_box_erf
    from onepair.erf_figure import save_heatmap

    done = store.get("erf")
    if done is not None:
        return done or None
    options = {
        "size": config.erf_size,
        "count": config.erf_count,
        "channels": channels,
        "seed": config.seed,
    }
    try:
        mine = black_box_erf(target, **options)
    except (ValueError, RuntimeError) as error:  # e.g. a target that refuses small images
        store.put("erf-error", str(error))
        return store.put("erf", {}) or None
    # float32: the ERF measures small changes, below bfloat16's resolution
    theirs = black_box_erf(lambda image: copy.apply(image, precision="float32"), **options)
    save_heatmap(mine, out / "images/erf_target.png", title="target")
    save_heatmap(theirs, out / "images/erf_imitator.png", title="best imitator")
    return store.put(
        "erf",
        {
            **mine.to_dict(),
            "image": "images/erf_target.png",
            "imitator_radius": theirs.radius,
            "imitator_image": "images/erf_imitator.png",
        },
    )


def defend(
    pair: Pair,
    held: dict[str, tuple[np.ndarray, np.ndarray]],
    defense: Defense,
    control: list | None,
    config: AuditConfig,
    store: Store,
    show_progress: bool,
) -> tuple[dict[str, Any], list]:
    """One defence: the copy fitted on the published pair, its fidelity, cost and evidence;
    returns the row and the copy's (x, y, z) on the held-out images."""
    key = f"defense-{slug(defense.label)}"
    published = publish(pair, defense, seed=config.seed)
    run = store.out / "runs" / key
    copy = fit_copy(
        published.pair, config.defense_model, config.defense_seconds, run, config, show_progress
    )
    outputs = copy_outputs(copy.network, held, copy.device)
    done = store.get(key)
    if done is not None:
        return done, outputs
    found = evidence(published, outputs, control or ())
    return store.put(
        key,
        {
            "defense": defense.name,
            "strength": defense.strength,
            "label": defense.label,
            **fidelity(outputs),
            "cost_psnr": published.cost_psnr,
            "cost_ssim": published.cost_ssim,
            "fit_seconds": copy.metrics["seconds"],
            "evidence": found,
        },
    ), outputs
