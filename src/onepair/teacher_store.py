"""A teacher's run folder and its training checkpoint (see :mod:`onepair.teachers`).

The folder is an imitator run folder whose ``config.json`` gains a
``"teacher"`` section; ``checkpoint.safetensors`` holds the network, the
discriminator (adversarial loss), both Adam states and the crop generator,
with the settings as JSON metadata, so an interrupted training resumes at the
saved step with the same crops. It is written and read as the fit's
checkpoint is (:func:`onepair.verified.write_verified` and
:func:`~onepair.verified.read_verified`): digests, a previous generation,
atomic renames.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onepair.imitator import Imitator

CHECKPOINT_FORMAT = "onepair-teacher-checkpoint-1"
RESUMABLE = {"steps", "seconds", "device"}  # settings an interrupted run may change


def load_run(folder: Path, device: str = "auto") -> Imitator:
    from onepair.imitator import Imitator

    return Imitator.load(folder, device=device)


def add_teacher_section(out: Path, teacher: dict[str, Any]) -> None:
    """Add the ``"teacher"`` section to the run folder's config.json (atomically)."""
    import json

    path = out / "config.json"
    tmp = out / f".config.json.tmp{os.getpid()}"
    tmp.write_text(
        json.dumps({**json.loads(path.read_text()), "teacher": teacher}, indent=2) + "\n"
    )
    os.replace(tmp, path)


def teacher_info(folder: str | Path) -> dict[str, Any]:
    """The ``"teacher"`` section of a teacher run folder's config.json."""
    import json

    config = json.loads((Path(folder) / "config.json").read_text())
    if "teacher" not in config:
        raise ValueError(f"{folder} is a run folder but not a teacher's (no 'teacher' section)")
    return config["teacher"]


def store_checkpoint(
    out: Path,
    settings: dict,
    network: Any,
    optimizer: Any,
    criterion: Any,
    generator: Any,
    state: Any,
) -> None:
    """Write ``checkpoint.safetensors`` (verified, rotating): weights, Adam moments, generator."""
    from onepair.verified import write_verified

    tensors, groups = {}, {}
    parts = {"net": (network, optimizer), "disc": (criterion.discriminator, criterion.optimizer)}
    for prefix, (module, opt) in parts.items():
        if module is None:
            continue
        for key, value in module.state_dict().items():
            tensors[f"{prefix}.{key}"] = value.detach().cpu().contiguous()
        saved = opt.state_dict()
        groups[prefix] = saved["param_groups"]
        for index, values in saved["state"].items():
            for key, value in values.items():
                tensors[f"{prefix}-opt.{index}.{key}"] = value.detach().cpu().contiguous()
    tensors["generator"] = generator.get_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "settings": settings,
        "param_groups": groups,
        "state": {"step": state.step, "elapsed": state.elapsed, "history": state.history},
    }
    write_verified(out, tensors, meta)


def restore_checkpoint(
    out: Path, settings: dict, network: Any, optimizer: Any, criterion: Any, generator: Any
) -> Any:
    """Load the newest verified checkpoint into the given objects; ``None`` if there is none."""
    from onepair.checkpoint import State
    from onepair.verified import NAME, read_verified

    found = read_verified(out)
    if found is None:
        return None
    meta, tensors = found
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{out / NAME} is not a teacher checkpoint (format {meta.get('format')!r})"
        )
    differ = sorted(
        k
        for k in set(settings) | set(meta["settings"])
        if k not in RESUMABLE and settings.get(k) != meta["settings"].get(k)
    )
    if differ:
        raise ValueError(
            f"cannot resume {out}: settings differ from the interrupted training in {differ}; "
            "use the same settings or a new folder"
        )
    parts = {"net": (network, optimizer), "disc": (criterion.discriminator, criterion.optimizer)}
    for prefix, (module, opt) in parts.items():
        if module is None:
            continue
        module.load_state_dict(
            {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        )
        moments: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix + "-opt."):
                _, index, name = key.split(".", 2)
                moments.setdefault(int(index), {})[name] = value
        opt.load_state_dict({"state": moments, "param_groups": meta["param_groups"][prefix]})
    generator.set_state(tensors["generator"])
    s = meta["state"]
    return State(step=s["step"], elapsed=s["elapsed"], history=s["history"])
