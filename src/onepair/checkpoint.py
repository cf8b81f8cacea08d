"""Checkpoints of an unfinished fit, and the rules of the run folder.

A checkpoint is one ``checkpoint.safetensors`` in the run folder: the model,
the best weights so far, Adam's moments and the crop generator's state as
tensors, and the loop's counters, history and settings as JSON metadata;
resuming continues the same sequence of crops from the saved step.

Nothing is lost to a kill or a corrupted file: checkpoints are written and
read by :mod:`onepair.verified` (digests, a previous generation to fall back
to, atomic renames), which the teacher checkpoint shares.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from onepair.verified import NAME, PREV, read_verified, write_verified

FORMAT = "onepair-checkpoint-1"
# Settings that may change between an interrupted fit and its resumption.
RESUMABLE = {"steps", "seconds", "device", "threads", "patience", "checkpoint_every", "log_every"}
SLACK = 1 << 20  # bytes allowed per checkpoint for its header and JSON history

log = logging.getLogger("onepair")


@dataclass
class State:
    """The fit loop's counters and the best weights seen on the held-out blocks."""

    step: int = 0
    elapsed: float = 0.0
    best_psnr: float = -math.inf
    best_step: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    floor: float | None = None
    stopped_early: bool = False

    def keep_best(self, network: torch.nn.Module, value: float) -> None:
        self.best_psnr, self.best_step = value, self.step
        self.best_weights = {k: v.detach().clone() for k, v in network.state_dict().items()}

    def evals_since_best(self) -> int:
        return sum(1 for r in self.history if "val_psnr" in r and r["step"] > self.best_step) + 1

    def log(self, step: int, seconds: float, row: dict[str, float]) -> None:
        self.history.append({"step": step, "seconds": round(seconds, 3), **row})


def estimate_bytes(num_params: int) -> int:
    """Disk a fit of a float32 network with ``num_params`` parameters may hold at once.

    A checkpoint is about 16 bytes per parameter (weights, best weights, two
    Adam moments) plus :data:`SLACK`; while one is written three exist (new,
    current, previous), and the finished folder adds 4 bytes per parameter.
    """
    return 3 * (16 * num_params + SLACK) + 4 * num_params


def prepare_run_dir(out: Path, resume: bool, need_bytes: int | None = None) -> bool:
    """Check ``out`` before any work; True if it holds a finished run to return as is.

    Temporary files left by a killed process are removed first. With
    ``need_bytes`` (see :func:`estimate_bytes`) the folder's file system must
    have that much free, counting the space of checkpoints a resumption replaces.
    """
    if out.is_dir():
        _sweep(out)
    finished = (out / "weights.safetensors").is_file() and (out / "config.json").is_file()
    interrupted = (out / NAME).is_file() or (out / PREV).is_file()
    if interrupted and not resume:
        raise FileExistsError(
            f"{out} holds an interrupted fit; pass --resume to continue it or choose another folder"
        )
    if finished and not interrupted:
        if resume:
            return True
        raise FileExistsError(f"{out} already holds a finished imitator; choose another folder")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and not interrupted and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new or empty folder")
    probe = out / ".write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to {out}: {error}") from error
    if need_bytes is not None:
        free = shutil.disk_usage(out).free
        replaced = sum(p.stat().st_size for p in (out / NAME, out / PREV) if p.is_file())
        if free + replaced < need_bytes:
            raise ValueError(
                f"{out} has {free:,} bytes free but the run needs about {need_bytes:,} for its "
                "checkpoints and weights; free some space or choose another folder"
            )
    return False


def _sweep(out: Path) -> None:
    """Remove temporary files of the run folder whose writer (the PID in the name) is gone."""
    if os.name != "posix":
        return
    for name in (NAME, "weights.safetensors", "config.json", "metrics.json", "history.csv"):
        for path in out.glob(f".{name}.tmp*"):
            pid = path.name[len(f".{name}.tmp") :]
            if pid.isdigit() and not _alive(int(pid)):
                log.info("removing %s, left by a killed process", path)
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _settings(model: Any, config: Any) -> dict[str, Any]:
    from onepair.imitator import fit_config_to_dict
    from onepair.models import config_to_dict

    fit = {k: v for k, v in fit_config_to_dict(config).items() if k not in RESUMABLE}
    return {"model": config_to_dict(model), "fit": fit}


def save(
    out: Path,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    model: Any,
    config: Any,
    state: State,
) -> None:
    """Write the checkpoint (atomically, keeping the previous one)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    if state.best_weights is not None:
        tensors.update({f"best.{k}": v.cpu().contiguous() for k, v in state.best_weights.items()})
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for key, value in values.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["generator"] = generator.get_state()
    meta = {
        "format": FORMAT,
        "settings": _settings(model, config),
        # a learning rate held in a device tensor (a graphed step's, onepair.steps) as a number
        "param_groups": [
            {k: v.item() if torch.is_tensor(v) else v for k, v in group.items()}
            for group in opt["param_groups"]
        ],
        "state": {
            "step": state.step,
            "elapsed": state.elapsed,
            "best_psnr": state.best_psnr if math.isfinite(state.best_psnr) else None,
            "best_step": state.best_step,
            "history": state.history,
            "floor": state.floor,
        },
    }
    write_verified(out, tensors, meta)


def saved_settings(out: Path) -> dict[str, dict[str, Any]] | None:
    """The model and fit settings of the interrupted fit in ``out``; ``None`` if none."""
    found = read_verified(out)
    return found[0].get("settings") if found is not None else None


def load(
    out: Path,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    model: Any,
    config: Any,
) -> State | None:
    """Restore the newest verified checkpoint into the given objects; ``None`` if there is none."""
    found = read_verified(out)
    if found is None:
        return None
    meta, tensors = found
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{out / NAME} is not an onepair checkpoint (format {meta.get('format')!r})"
        )
    now = _settings(model, config)
    if meta["settings"] != now:
        diff = [
            f"{part}.{k}"
            for part in now
            for k in set(now[part]) | set(meta["settings"][part])
            if now[part].get(k) != meta["settings"][part].get(k)
        ]
        raise ValueError(
            f"cannot resume {out}: settings differ from the interrupted fit in "
            f"{sorted(diff)}; use the same settings (and --preset) or a new folder"
        )
    device = next(network.parameters()).device
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    # how the update runs (one fused kernel, or not; captured in a graph, or not) is this
    # device's choice, not the saved one's
    groups = [
        {**saved, **{k: now[k] for k in ("fused", "foreach", "capturable") if k in now}}
        for saved, now in zip(meta["param_groups"], optimizer.param_groups, strict=True)
    ]
    rates = [group["lr"] for group in optimizer.param_groups]
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        if torch.is_tensor(rate):  # keep the device tensor a graphed step reads
            group["lr"] = rate.fill_(group["lr"])
    generator.set_state(tensors["generator"])
    s = meta["state"]
    return State(
        step=s["step"],
        elapsed=s["elapsed"],
        best_psnr=s["best_psnr"] if s["best_psnr"] is not None else -math.inf,
        best_step=s["best_step"],
        best_weights=best or None,
        history=s["history"],
        floor=s["floor"],
    )


def remove(out: Path) -> None:
    """Delete the checkpoint and its previous generation (the run has finished)."""
    (out / PREV).unlink(missing_ok=True)
    (out / NAME).unlink(missing_ok=True)
