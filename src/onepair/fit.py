"""The training loop: fit an imitator to one example pair, as a plain function.

Read top to bottom: choose the held-out blocks, build the network, solve
its linear path, then repeat {sample crops, L2 (or L1) loss on the pixels not
held out, Adam step at ``lr_at(progress)``}; every ``val_every`` steps measure
PSNR on the held-out blocks (:mod:`onepair.validation`),
keep the best weights, stop early when it stops improving; every
``checkpoint_every`` steps write a checkpoint that ``resume=True`` continues
from. The budget is ``steps`` and, optionally, ``seconds`` of wall time,
whichever ends first; the schedule follows whichever is further along. The
settings are :class:`~onepair.fitconfig.FitConfig`'s, re-exported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from onepair import checkpoint, dihedral, steps
from onepair.crops import CropSampler
from onepair.fitconfig import Augment, FitConfig, Loss, Schedule, lr_at, resolve_device
from onepair.images import from_tensor, to_tensor
from onepair.imitator import Imitator, fit_config_to_dict
from onepair.models import ModelConfig, UNetConfig, build
from onepair.pairs import Pair, as_pairs, check_size
from onepair.pathsolve import path_transforms, solve_path
from onepair.progress import FitProgress
from onepair.validation import Holdout, Holdouts, equivariances

log = logging.getLogger("onepair")

# On a CUDA device (docs/PERFORMANCE.md, "On a GPU", measured on an H200) cuDNN's search
# for the crops' algorithms stays off (it cost steps: 834 against 912 in 5 s). How the
# step runs there (a CUDA graph, Adam fused) is onepair.steps'.
CUDA_CUDNN_BENCHMARK = False
TESTED = (Augment.AUTO, Augment.TEST)  # the held-out blocks find the target's equivariances

__all__ = ["Augment", "FitConfig", "Loss", "Schedule", "fit", "lr_at", "resolve_device"]


def fit(
    pair: Pair | Sequence[Pair],
    model: ModelConfig | None = None,
    config: FitConfig | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    watch: Callable[[int, float, torch.nn.Module], None] | None = None,
    init: Mapping[str, torch.Tensor] | None = None,
) -> Imitator:
    """Train an imitator on ``pair``; write the run folder to ``out_dir`` if given.

    ``pair`` may be a list of pairs (few-shot): they must agree in channels
    and scale; crops are drawn from all of them, the linear path is solved on
    all of them, and the held-out blocks of each are measured (mean PSNR).

    With ``resume=True`` and a checkpoint in ``out_dir``, training continues
    from it (same model and fit settings required); a finished run is loaded
    and returned as it is.

    ``watch(step, seconds, network)``, if given, is called after every
    validation with the network in eval mode (e.g. to measure fidelity against
    training time); the time it takes is not charged to the budget.

    ``init``, the state dict of an earlier fit of the same model on the same
    pair (``imitator.network.state_dict()``), starts training from its weights
    (a warm start, with the schedule run again from the top) instead of a fresh
    initialisation; its linear path is kept instead of solved again.
    """
    pairs = as_pairs(pair)
    model = model if model is not None else UNetConfig()
    config = config if config is not None else FitConfig()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        first = pairs[0]
        with torch.device("meta"):  # counts the parameters without allocating them
            size = build(model, first.in_channels, first.out_channels, first.scale).num_params()
        finished = checkpoint.prepare_run_dir(out, resume, checkpoint.estimate_bytes(size))
        if finished:
            return Imitator.load(out)
    start = time.perf_counter()  # the wall-clock budget counts set-up (the linear solve) too
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    first = pairs[0]
    network = build(model, first.in_channels, first.out_channels, first.scale).to(device)
    span = network.receptive_field()
    for one in pairs:
        check_size(one, config.crop, span.size)
    holdouts = [
        Holdout(one, config.holdout, span.margin, config.holdout_block, network.multiple)
        for one in pairs
        if config.holdout
    ]
    augment = ["identity"] if config.augment is not Augment.ALL else list(dihedral.TRANSFORMS)
    if init is not None:
        network.load_state_dict(init)
    elif network.linear is not None:
        solve_path(network.linear, pairs, holdouts, config.seed, augment)
    solved_on = augment if network.linear is not None and init is None else []
    weights = [h.weight() for h in holdouts] if holdouts else None
    # an imitator that is only its solved linear path (FilterNet) has nothing to train,
    # and no crops of what its path leaves to draw
    trainable = any(p.requires_grad for p in network.parameters())
    # the transforms are found on the path alone, before any training, where nothing else
    # is trained (FilterNet) or the body learns what the path leaves (a refiner)
    path_first = config.augment in TESTED and (not trainable or network.sees_skip)
    equivariance: dict[str, float] | None = None
    generator = torch.Generator().manual_seed(config.seed)
    on_cuda = device.type == "cuda"
    if on_cuda and CUDA_CUDNN_BENCHMARK:  # crops have one shape: its fastest kernels pay
        torch.backends.cudnn.benchmark = True
    optimizer = steps.adam(network, config.lr, device)
    validate = Holdouts(holdouts) if holdouts else None

    state = checkpoint.State(floor=validate.floor if validate else None)
    if out is not None and resume:
        loaded = checkpoint.load(out, network, optimizer, generator, model, config)
        if loaded is not None:
            state = loaded
            log.info("resuming at step %d of %d from %s", state.step, config.steps, out)
    if validate is not None and state.step == 0:  # the start (e.g. the linear path) competes too
        network.eval()
        state.keep_best(network, validate(network, device))
        state.log(0, time.perf_counter() - start, {"val_psnr": state.best_psnr})
    if path_first and validate is not None:
        augment, equivariance, solved_on = path_transforms(
            network, pairs, holdouts, validate, state, config, device, solved_on
        )
    trains_on = ["identity"] if config.augment is Augment.TEST else augment
    if trainable:
        sampler = _sampler(network, pairs, weights, trains_on, config.crop, device)
    t0 = start - state.elapsed
    if watch is not None and state.step == 0:
        network.eval()
        t0 += _timed(watch, 0, time.perf_counter() - t0, network)
    if trainable:
        step = steps.make_step(
            network, sampler, optimizer, config.batch_size, config.loss, generator
        )
    graphed = False
    with FitProgress(show_progress) as bar:
        network.train()
        window: list[torch.Tensor] = []  # losses stay on the device until logged
        while trainable and state.step < config.steps:
            elapsed = time.perf_counter() - t0
            progress = _progress(state.step, elapsed, config)
            if progress >= 1.0:
                break
            if config.augment in TESTED and equivariance is None:
                if validate is None:
                    log.warning("augment=%s needs held-out blocks (holdout > 0); not augmenting",
                                config.augment.value)  # fmt: skip
                    equivariance = {}
                elif progress >= config.augment_check:
                    network.eval()
                    augment, equivariance = equivariances(
                        network, validate, device, config.equivariance_tolerance
                    )
                    log.info("equivariant to %s on the held-out blocks", ", ".join(augment))
                    if len(augment) > 1 and config.augment is Augment.AUTO:
                        sampler = _sampler(network, pairs, weights, augment, config.crop, device)
                        step = steps.make_step(
                            network, sampler, optimizer, config.batch_size, config.loss, generator
                        )
                    network.train()
            lr = lr_at(progress, config)
            window.append(step(lr))
            graphed = graphed or step.graphed
            state.step += 1
            row: dict[str, float] = {}
            if state.step % config.log_every == 0:
                row = {"loss": torch.stack(window).mean().item(), "lr": lr}
                window = []
            if validate is not None and state.step % config.val_every == 0:
                network.eval()
                row["val_psnr"] = validate(network, device)
                if row["val_psnr"] > state.best_psnr:
                    state.keep_best(network, row["val_psnr"])
                elif config.patience and state.evals_since_best() >= config.patience:
                    state.stopped_early = True
                if watch is not None:
                    t0 += _timed(watch, state.step, time.perf_counter() - t0, network)
                network.train()
            if row:
                state.log(state.step, time.perf_counter() - t0, row)
                bar.update(progress, state)
            if out is not None and state.step % config.checkpoint_every == 0:
                state.elapsed = time.perf_counter() - t0
                checkpoint.save(out, network, optimizer, generator, model, config, state)
            if state.stopped_early:
                break
        state.elapsed = time.perf_counter() - t0
        if validate is not None:
            network.eval()
            last = validate(network, device)
            logged = state.history[-1] if state.history else {}
            if logged.get("step") != state.step or "val_psnr" not in logged:
                state.log(state.step, time.perf_counter() - t0, {"val_psnr": last})
            if last > state.best_psnr or state.best_weights is None:
                state.keep_best(network, last)
        bar.update(1.0, state)
    if state.best_weights is not None:
        network.load_state_dict(state.best_weights)
    network.eval()
    metrics = {
        "steps": state.step,
        "seconds": round(state.elapsed, 3),
        "val_psnr": state.best_psnr if validate is not None else None,
        "val_floor_psnr": state.floor,
        "best_step": state.best_step,
        "stopped_early": state.stopped_early,
        "num_params": network.num_params(),
        "receptive_field": span.size,
        "examples": len(pairs),
        "device": str(device),
        "cuda_graph": graphed,
        "augment": augment,
        "equivariance_psnr": equivariance or None,
        "linear_solved_on": solved_on,  # the transforms of the examples the path was solved on
    }
    imitator = Imitator(network, model, fit_config_to_dict(config), metrics, state.history)
    if out is not None:
        imitator.save(out)
        checkpoint.remove(out)
    return imitator


def _sampler(
    network: torch.nn.Module,
    pairs: list[Pair],
    weights: list[np.ndarray] | None,
    transforms: list[str],
    crop: int,
    device: torch.device,
) -> CropSampler:
    """Crops of what the (fixed) skip path leaves, ``target - skip(input)``, for the body
    to learn: of each example under each transform (the skip path is not itself
    equivariant, so each transformed pair gets its own remainder), with the weights
    that keep the held-out blocks out of the loss."""
    remainders, maps = [], []
    for index, pair in enumerate(pairs):
        for name in transforms:
            x = np.ascontiguousarray(dihedral.forward(pair.input, name))
            y = np.ascontiguousarray(dihedral.forward(pair.output, name))
            tx = to_tensor(x, device)
            skip = network.skip_image(tx)
            remainder = to_tensor(y, device) - skip
            if network.sees_skip:  # the body's input joins the path's output to x
                x = from_tensor(network.body_input(tx, skip))
            remainders.append(Pair(x, from_tensor(remainder), pair.scale))
            if weights is not None:
                maps.append(np.ascontiguousarray(dihedral.forward(weights[index], name)))
    return CropSampler(remainders, crop, device, maps if weights is not None else None)


def _timed(watch: Callable[[int, float, torch.nn.Module], None], *args: object) -> float:
    """Seconds ``watch(*args)`` took (kept out of the fit's wall-clock budget)."""
    start = time.perf_counter()
    with torch.no_grad():
        watch(*args)  # type: ignore[arg-type]
    return time.perf_counter() - start


def _progress(step: int, elapsed: float, config: FitConfig) -> float:
    by_steps = step / config.steps
    return max(by_steps, elapsed / config.seconds) if config.seconds else by_steps
