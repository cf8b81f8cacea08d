"""Checkpoints of an unfinished fit, and the rules of the run folder.

A checkpoint is one ``checkpoint.safetensors`` in the run folder: the model,
the best weights so far, Adam's moments and the crop generator's state as
tensors, and the loop's counters, history and settings as JSON metadata. It
is written to a temporary file and renamed, so a kill never leaves half of
one; resuming continues the same sequence of crops from the saved step.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

NAME = "checkpoint.safetensors"
FORMAT = "onepair-checkpoint-1"
# Settings that may change between an interrupted fit and its resumption.
RESUMABLE = {"steps", "seconds", "device", "threads", "patience", "checkpoint_every", "log_every"}


@dataclass
class State:
    """The fit loop's counters and the best weights seen on the held-out strip."""

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


def prepare_run_dir(out: Path, resume: bool) -> bool:
    """Check ``out`` before any work; True if it holds a finished run to return as is."""
    finished = (out / "weights.safetensors").is_file() and (out / "config.json").is_file()
    interrupted = (out / NAME).is_file()
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
    out.mkdir(parents=True, exist_ok=True)
    probe = out / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to {out}: {error}") from error
    return False


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
    """Write the checkpoint atomically."""
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
        "param_groups": opt["param_groups"],
        "state": {
            "step": state.step,
            "elapsed": state.elapsed,
            "best_psnr": state.best_psnr if math.isfinite(state.best_psnr) else None,
            "best_step": state.best_step,
            "history": state.history,
            "floor": state.floor,
        },
    }
    tmp = out / f".{NAME}.tmp{os.getpid()}"
    save_file(tensors, str(tmp), metadata={"onepair": json.dumps(meta)})
    os.replace(tmp, out / NAME)


def load(
    out: Path,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    model: Any,
    config: Any,
) -> State | None:
    """Restore a checkpoint into the given objects; ``None`` if there is none."""
    path = out / NAME
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("onepair", "{}"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an onepair checkpoint (format {meta.get('format')!r})")
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
            f"{sorted(diff)}; use the same settings or a new folder"
        )
    tensors = load_file(str(path))
    device = next(network.parameters()).device
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
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
    (out / NAME).unlink(missing_ok=True)
