"""The eight flips and rotations of a square grid, on (H, W, C) images.

A target that commutes with some of them (most denoisers commute with all
eight) gives, from one example pair, a transformed pair of the same target for
each: free extra examples for training. Whether it commutes is a property of
the target, which one pair cannot show directly; :mod:`onepair.fit` tests it on
the held-out blocks (``augment="auto"``). At apply time the imitation can be
averaged over the same transforms (self-ensemble).

Each transform is an optional transpose followed by optional flips of rows and
of columns; ``inverse`` undoes ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# name: (transpose, flip rows (up-down), flip columns (left-right))
TRANSFORMS: dict[str, tuple[bool, bool, bool]] = {
    "identity": (False, False, False),
    "flip-lr": (False, False, True),
    "flip-ud": (False, True, False),
    "rot180": (False, True, True),
    "transpose": (True, False, False),
    "rot90": (True, True, False),  # counter-clockwise, as np.rot90
    "rot270": (True, False, True),
    "anti-transpose": (True, True, True),
}


def forward(image: np.ndarray, name: str) -> np.ndarray:
    """``image`` (H, W, ...) under the transform ``name`` (a view where possible)."""
    transpose, rows, cols = _parts(name)
    out = image.swapaxes(0, 1) if transpose else image
    out = out[::-1] if rows else out
    return out[:, ::-1] if cols else out


def inverse(image: np.ndarray, name: str) -> np.ndarray:
    """Undo :func:`forward`: ``inverse(forward(a, g), g) == a``."""
    transpose, rows, cols = _parts(name)
    out = image[:, ::-1] if cols else image
    out = out[::-1] if rows else out
    return out.swapaxes(0, 1) if transpose else out


def ensemble(
    run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, names: list[str]
) -> np.ndarray:
    """The mean of ``inverse(run(forward(image, g)), g)`` over the transforms ``names``."""
    total = None
    for name in names:
        out = inverse(run(np.ascontiguousarray(forward(image, name))), name)
        total = out.astype(np.float32) if total is None else total + out
    assert total is not None, "ensemble needs at least one transform"
    return total / len(names)


def _parts(name: str) -> tuple[bool, bool, bool]:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name]
