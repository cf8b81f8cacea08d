"""Is the black box deterministic? Ask it the same question more than once.

The paper's fidelity (PSNR of imitator vs target output on unseen images)
assumes that the target gives one answer per input. A target that samples
(diffusion models, test-time dropout, an API adding a watermark with fresh
noise) does not; then the PSNR between two of its own answers to the same
input is a ceiling that no imitator, however faithful, can be expected to
beat against one answer (with independent zero-mean noise of variance v per
pixel, two answers differ by 2v and the mean answer by v from each: the
ceiling is this PSNR + 3.01 dB). :func:`check_determinism` measures it, so
that a low fidelity is not blamed on the imitator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onepair.images import as_image
from onepair.metrics import psnr


@dataclass(frozen=True)
class Determinism:
    """How far ``repeats`` answers of a target to one input differ.

    ``max_abs_diff``: the largest |a - b| over pixels and channels between the
    first answer and any later one (``inf`` when their shapes differ).
    ``psnr``: the lowest PSNR in dB (data range 1) between the first answer and
    a later one; ``inf`` when all are identical, ``None`` when shapes differ.
    ``deterministic``: ``max_abs_diff <= tolerance``.
    """

    repeats: int
    max_abs_diff: float
    psnr: float | None
    tolerance: float
    deterministic: bool

    def describe(self) -> str:
        """One line for a terminal."""
        if self.deterministic:
            exact = "identical" if self.max_abs_diff == 0 else f"within {self.tolerance:g}"
            return f"deterministic: {self.repeats} answers to the same input are {exact}"
        if self.psnr is None:
            return f"NOT deterministic: {self.repeats} answers to the same input differ in shape"
        return (
            f"NOT deterministic: {self.repeats} answers to the same input differ by up to "
            f"{self.max_abs_diff:.4g} (PSNR {self.psnr:.2f} dB between them; with independent "
            f"noise even a perfect imitator of the mean answer scores only about "
            f"{self.psnr + 10 * math.log10(2):.2f} dB against one answer)"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (``inf`` written as the string ``"inf"``, as in eval.json)."""
        return {
            "repeats": self.repeats,
            "deterministic": self.deterministic,
            "max_abs_diff": _finite_or_text(self.max_abs_diff),
            "psnr": None if self.psnr is None else _finite_or_text(self.psnr),
            "tolerance": self.tolerance,
        }


def check_determinism(
    target: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    repeats: int = 2,
    tolerance: float = 0.0,
    answer: np.ndarray | None = None,
) -> Determinism:
    """Query ``target`` ``repeats`` times on ``image`` (H, W, C in [0, 1]) and compare.

    ``target`` is any target (a :class:`~onepair.targets.SpecTarget` runs its
    model only: its degradations are not re-drawn). ``answer``, if given, is
    an answer already obtained for ``image`` and counts as the first of the
    ``repeats`` (one query fewer). ``tolerance`` = 0 demands bit-identical
    answers; e.g. 1e-6 accepts float round-off.

    >>> check_determinism(lambda x: x * 0.5, np.zeros((4, 4, 1))).deterministic
    True
    """
    if repeats < 2:
        raise ValueError(f"repeats is {repeats}; comparing answers needs at least 2")
    if not 0 <= tolerance < math.inf:
        raise ValueError(f"tolerance is {tolerance}; expected a finite number >= 0")
    image = as_image(image, "determinism check input")
    first = as_image(answer if answer is not None else target(image), "first answer")
    worst_diff, worst_psnr = 0.0, math.inf
    for _ in range(repeats - 1):
        again = as_image(target(image), "repeated answer")
        if again.shape != first.shape:
            worst_diff, worst_psnr = math.inf, None
            break
        diff = np.abs(again.astype(np.float64) - first.astype(np.float64))  # finite: as_image
        worst_diff = max(worst_diff, float(np.max(diff, initial=0.0)))
        worst_psnr = min(worst_psnr, psnr(again, first))  # inf for identical answers
    return Determinism(
        repeats=repeats,
        max_abs_diff=worst_diff,
        psnr=worst_psnr,
        tolerance=float(tolerance),
        deterministic=worst_diff <= tolerance,
    )


def _finite_or_text(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


__all__ = ["Determinism", "check_determinism"]
