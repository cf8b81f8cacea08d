"""Training a teacher (:mod:`onepair.teachers` lists the tasks, losses and architectures).

Training draws random crops of random images in one of their 8 flips/rotations,
Adam with a warm-up and a cosine decay over the budget (steps and/or seconds,
whichever ends first). The output folder is an imitator run folder
(:meth:`Imitator.load` reads it, so ``run:DIR`` serves it as a target) whose
``config.json`` has a ``"teacher"`` section. ``checkpoint.safetensors``, written
atomically every ``checkpoint_every`` steps, lets ``resume=True`` continue an
interrupted run at the saved step with the same crops.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepair.teacher_data import TASKS, task_data
from onepair.teacher_store import (
    add_teacher_section,
    load_run,
    restore_checkpoint,
    store_checkpoint,
)
from onepair.teachers import STEPS, check_choices, default_loss

if TYPE_CHECKING:
    from onepair.imitator import Imitator

log = logging.getLogger("onepair")


def train_teacher(
    task: str,
    out_dir: str | Path,
    architecture: str = "unet",
    loss: str | None = None,
    seconds: float | None = None,
    steps: int | None = STEPS,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = True,
    *,
    width: int = 16,
    batch_size: int = 8,
    crop: int = 48,
    lr: float = 2e-3,
    images: tuple[str, ...] | None = None,
    resume: bool = False,
    checkpoint_every: int = 100,
    log_every: int = 10,
) -> Imitator:
    """Train the ``task`` teacher; write its run folder to ``out_dir`` and return it.

    ``loss`` defaults to the task's natural loss (``l2``; ``cross-entropy`` for
    tissue). The budget is ``steps`` and/or ``seconds`` of wall time, whichever
    ends first (at least one is needed); by default :data:`STEPS` steps, the same
    teacher on every machine. ``images`` restricts a denoiser to
    some of its images. ``resume=True`` continues an interrupted run in
    ``out_dir`` (same settings but budget and device) or returns a finished one.

    >>> teacher = train_teacher("denoiser", "teachers/dn", steps=2000)  # doctest: +SKIP
    >>> teacher.apply(noisy)                                              # doctest: +SKIP
    """
    import torch

    from onepair import checkpoint
    from onepair.fit import FitConfig, lr_at, resolve_device
    from onepair.imitator import Imitator
    from onepair.models import build
    from onepair.progress import FitProgress
    from onepair.teacher_data import Sampler
    from onepair.teacher_losses import Criterion

    loss = loss if loss is not None else default_loss(task)
    check_choices(task, architecture, loss)
    if steps is None and seconds is None:
        raise ValueError("train_teacher needs a budget: steps, seconds or both")
    for name, value in (("steps", steps), ("seconds", seconds), ("width", width)):
        if value is not None and value <= 0:
            raise ValueError(f"train_teacher {name} is {value}; expected > 0 (or None: no limit)")
    settings = {
        "task": task,
        "architecture": architecture,
        "loss": loss,
        "width": width,
        "batch_size": batch_size,
        "crop": crop,
        "lr": lr,
        "seed": seed,
        "images": list(images) if images else None,
        "steps": steps,
        "seconds": seconds,
        "device": device,
    }
    out = Path(out_dir)
    if checkpoint.prepare_run_dir(out, resume):
        return load_run(out)
    start = time.perf_counter()
    dev = resolve_device(device)
    torch.manual_seed(seed)
    data = task_data(task, tuple(images) if images else None)
    smallest = min(min(x.shape[:2]) for x in data["inputs"])
    if not 1 <= crop <= smallest:
        raise ValueError(f"crop is {crop}; the {task} teacher's images allow 1..{smallest}")
    cin, cout = data["channels"]
    model = _model(task, architecture, width)
    network = build(model, cin, cout).to(dev)
    criterion = Criterion(loss, cin + cout, dev)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    sampler = Sampler(data, crop, dev)
    schedule = FitConfig(lr=lr, lr_min=0.01, warmup=0.02)
    state = checkpoint.State()
    if resume:
        restored = restore_checkpoint(out, settings, network, optimizer, criterion, generator)
        if restored is not None:
            state = restored
            log.info("resuming the %s teacher at step %d from %s", task, state.step, out)
    t0 = start - state.elapsed
    with FitProgress(show_progress, label=f"teacher {task}") as bar:
        network.train()
        window: list[torch.Tensor] = []
        while True:
            elapsed = time.perf_counter() - t0
            progress = max(state.step / steps if steps else 0, elapsed / seconds if seconds else 0)
            if progress >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(progress, schedule)
            x, y = sampler.batch(batch_size, generator)
            prediction = network.logits(x) if task == "tissue" else network(x)
            value = criterion(x, prediction, y)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            criterion.train_discriminator(x, prediction.detach(), y)
            state.step += 1
            window.append(value.detach())
            if state.step % log_every == 0:
                row = {"loss": torch.stack(window).mean().item(), "lr": group["lr"]}
                state.log(state.step, time.perf_counter() - t0, row)
                window = []
                bar.update(progress, state)
            if state.step % checkpoint_every == 0:
                state.elapsed = time.perf_counter() - t0
                store_checkpoint(out, settings, network, optimizer, criterion, generator, state)
        state.elapsed = time.perf_counter() - t0
        if window:
            row = {"loss": torch.stack(window).mean().item(), "lr": optimizer.param_groups[0]["lr"]}
            state.log(state.step, state.elapsed, row)
        bar.update(1.0, state)
    network.eval()
    final = state.history[-1]["loss"] if state.history else None
    teacher = {
        "task": task,
        "description": TASKS[task],
        "architecture": architecture,
        "loss": loss,
        "images": data["names"],
        "input": data["input"],
        "output": data["output"],
        **({"classes": data["classes"]} if "classes" in data else {}),
        "steps": state.step,
        "seconds": round(state.elapsed, 1),
        "training_loss": final,
    }
    metrics = {
        "steps": state.step,
        "seconds": round(state.elapsed, 3),
        "training_loss": final,
        "num_params": network.num_params(),
        "receptive_field": network.receptive_field().size,
        "device": str(dev),
    }
    result = Imitator(network, model, settings, metrics, state.history)
    result.save(out)
    add_teacher_section(out, teacher)  # config.json last: a folder with it is a finished teacher
    checkpoint.remove(out)
    return result


def _model(task: str, architecture: str, width: int) -> Any:
    """The network config of a teacher: skip = identity for denoisers, none otherwise."""
    from onepair.models import AttentionConfig, PlainConfig, SoftmaxConfig, UNetConfig

    skip = "identity" if task.endswith("denoiser") else "none"
    if architecture == "unet":
        model = UNetConfig(depth=3, width=width, convs_per_level=2, skip=skip)
    elif architecture == "plain":  # DnCNN: 17 layers of 3x3 with batch norm
        model = PlainConfig(receptive_field=35, width=width, batchnorm=True, skip=skip)
    else:
        model = AttentionConfig(width=width, blocks=4, heads=2, window=8, skip=skip)
    return SoftmaxConfig(model) if task == "tissue" else model
