"""One cell of a study: make the pair, fit, evaluate on held-out images, one row.

:func:`run_cell` is a plain top-level function of the cell's settings, so a
process pool or a Dask worker can run it; it writes nothing (the driver
alone writes the store) and is deterministic up to the fit's wall-clock
budget.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from typing import Any

from onepair.models import AttentionConfig, ModelConfig, PlainConfig, UNetConfig
from onepair.study.grid import target_spec


def model_config(settings: dict[str, Any]) -> ModelConfig:
    """The imitator a cell fits; its linear path never reaches beyond the network's own
    receptive field, so the receptive field a grid sets is the imitator's."""
    import torch

    from onepair.models import Skip, build

    skip, kernel = settings["skip"], settings["linear_kernel"]
    if settings["architecture"] == "plain":
        config: ModelConfig = PlainConfig(
            receptive_field=settings["receptive_field"], width=settings["width"], skip=skip
        )
    elif settings["architecture"] == "unet":
        config = UNetConfig(
            depth=settings["depth"],
            width=settings["width"],
            unshuffle=settings["unshuffle"],
            skip=skip,
        )
    else:
        config = AttentionConfig(width=settings["width"], blocks=settings["blocks"], skip=skip)
    with torch.device("meta"):  # the body's receptive field, without allocating weights
        body = build(replace(config, skip=Skip.NONE), 1, 1).receptive_field().size
    return replace(config, linear_kernel=min(kernel, body))


def run_cell(settings: dict[str, Any]) -> dict[str, Any]:
    """Fit and measure one cell; returns its result row (settings not included)."""
    from onepair.evaluate import evaluate
    from onepair.fit import FitConfig, fit
    from onepair.pairs import Pair
    from onepair.samples import crop_center, read
    from onepair.targets import load_target

    start = time.perf_counter()
    seed = settings["seed"]
    target = load_target(target_spec(settings))
    clean = crop_center(read(settings["example"]), settings["example_size"], settings["example"])
    x = target.degrade(clean, seed)
    pair = Pair.of(x, target(x))
    config = FitConfig(
        steps=settings["steps"],
        seconds=settings["seconds"],
        batch_size=settings["batch_size"],
        crop=settings["crop"],
        lr=settings["lr"],
        loss=settings["loss"],
        seed=seed,
    )
    imitator = fit(pair, model_config(settings), config, show_progress=False)
    size = settings["held_out_size"]
    held = [crop_center(read(name), size, name) for name in settings["held_out"]]
    result = evaluate(imitator, target, held, names=list(settings["held_out"]), seed=seed + 1)
    metrics = imitator.metrics
    return {
        "psnr": result.mean("psnr"),
        "psnr_std": result.std("psnr"),
        "ssim": result.mean("ssim"),
        "ssim_std": result.std("ssim"),
        "floor_psnr": result.mean("floor_psnr"),
        "val_psnr": metrics["val_psnr"],
        "fit_seconds": metrics["seconds"],
        "steps_done": metrics["steps"],
        "num_params": metrics["num_params"],
        "imitator_receptive_field": metrics["receptive_field"],
        "queries": target.queries,
        "pixels": target.pixels,
        "seconds_total": round(time.perf_counter() - start, 3),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
