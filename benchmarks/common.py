"""What every benchmark shares: the machine it ran on, a JSON record, a table.

Each benchmark writes ``{"benchmark", "machine", "settings", "rows", ...}`` to
a JSON file and prints its rows as a Markdown table (readable in a terminal,
pasteable into docs).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onepair.fit import FitConfig
from onepair.imitator import version
from onepair.presets import preset


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where and with what a measurement was made."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "onepair": version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def write_record(out_dir: str | Path, name: str, record: dict[str, Any]) -> Path:
    """``out_dir/name.json``; infinities are written as the string "inf"."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(record), indent=2) + "\n")
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A table cell: floats to two decimals, missing values as a dash, ``|`` escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``rows`` as a Markdown table of ``columns``."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, for the head of a table."""
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
        f"gpu {info['gpu'] or 'none'}; torch {info['torch']}, numpy {info['numpy']}, "
        f"onepair {info['onepair']}; {info['date']}"
    )


def recipe(text: str, cin: int, cout: int, scale: int):
    """``NAME[:field=value,...]`` -> (model config, fit config)."""
    name, _, changes = text.partition(":")
    model, config = preset(name, cin, cout, scale)
    for item in filter(None, changes.split(",")):
        key, _, raw = item.partition("=")
        value = json.loads(raw) if raw[:1].isdigit() or raw in ("true", "false") else raw
        if key in {f.name for f in fields(model)}:
            model = replace(model, **{key: value})
        elif key in {f.name for f in fields(FitConfig)}:
            config = replace(config, **{key: value})
        else:
            raise ValueError(
                f"recipe {text!r}: {key!r} is no field of {type(model).__name__} or FitConfig"
            )
    return model, config
