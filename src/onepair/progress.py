"""Progress display for long work (rich, on stderr so stdout stays parseable)."""

from __future__ import annotations

import math
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class FitProgress:
    """A bar over the fit budget showing step, loss and held-out PSNR; silent if disabled."""

    def __init__(self, enabled: bool, config: Any, label: str = "fit"):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True, width=None if sys.stderr.isatty() else 120),
            transient=False,
            disable=not enabled,
        )
        self.task = self.progress.add_task(label, total=1000, info="")

    def __enter__(self) -> FitProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, progress: float, state: Any) -> None:
        if not self.enabled:
            return
        info = f"step {state.step}"
        losses = [r["loss"] for r in state.history if "loss" in r]
        if losses:
            info += f"  loss {losses[-1]:.2e}"
        if math.isfinite(state.best_psnr):
            info += f"  val {state.best_psnr:.2f} dB"
            if state.floor is not None:
                info += f" (input {state.floor:.2f})"
        self.progress.update(self.task, completed=min(progress, 1.0) * 1000, info=info)
