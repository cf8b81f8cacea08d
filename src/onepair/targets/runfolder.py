"""``run:DIR`` -- a run folder (an imitator, or a teacher onepair trained) as a target.

Imitating an imitator is how a copy of a copy is measured; teachers made by
``onepair zoo train-teacher`` are real models trained on many images and
serve as targets this way. The folder is loaded from safetensors and JSON
only (:meth:`onepair.imitator.Imitator.load`); no code in it is executed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def open_target(
    location: str, tile: str = "auto", device: str = "auto"
) -> Callable[..., np.ndarray]:
    """Load the run folder at ``location``; apply it tile by tile (``tile``: the side in
    pixels, or ``auto``: 512 on the CPU, 2048 on a GPU)."""
    from onepair.imitator import Imitator

    folder = Path(location)
    if not (folder / "config.json").is_file():
        raise ValueError(f"run: {folder} is not a run folder (no config.json)")
    if tile != "auto" and not tile.isdigit():
        raise ValueError(f"run: tile is {tile!r}; expected a side in pixels or auto")
    side: int | str = tile if tile == "auto" else int(tile)
    imitator = Imitator.load(folder, device=device)

    def apply(image: np.ndarray) -> np.ndarray:
        # a black box answers the same on every machine: no bfloat16 where AMX is
        return imitator.apply(image, tile=side, precision="float32")

    apply.__name__ = folder.name
    return apply
