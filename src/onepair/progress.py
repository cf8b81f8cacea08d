"""Progress display for long work (rich, on stderr so stdout stays parseable)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class FitProgress:
    """A bar over the fit budget showing step, loss and held-out PSNR; silent if disabled."""

    def __init__(self, enabled: bool, label: str = "fit"):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=_stderr(),
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


def _stderr() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else 120)


@contextmanager
def counted(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A bar for work counted in units (tiles, images); yields ``update(done, total)``."""
    progress = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=_stderr(),
        transient=True,
        disable=not enabled,
    )
    task = progress.add_task(label, total=None)
    with progress:
        yield lambda done, total: progress.update(task, completed=done, total=total)
