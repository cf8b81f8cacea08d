"""Receptive-field arithmetic in closed form.

A :class:`Span` says which input pixels one output pixel can depend on: output
pixel ``i`` (in input coordinates) depends only on inputs ``i + lo .. i + hi``,
for every position, including the phase effects of down- and up-sampling.
Layers update it with the recurrence ``r += (k - 1) * jump; jump *= stride``
written per side. Tiled inference uses :attr:`Span.margin` as its overlap; the
impulse-response tests check that measured dependencies lie inside the span.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """Input offsets ``lo <= 0 <= hi`` an output pixel depends on, at sampling step ``jump``."""

    lo: int = 0
    hi: int = 0
    jump: int = 1

    def conv(self, kernel: int) -> Span:
        """After a stride-1 convolution with an odd ``kernel`` and 'same' padding."""
        half = (kernel // 2) * self.jump
        return Span(self.lo - half, self.hi + half, self.jump)

    def down(self, factor: int = 2) -> Span:
        """After a factor x factor window with stride ``factor`` (pooling or strided conv)."""
        return Span(self.lo, self.hi + (factor - 1) * self.jump, self.jump * factor)

    def up(self, factor: int = 2) -> Span:
        """After nearest or stride-``factor`` transposed-conv up-sampling (kernel = factor)."""
        if self.jump % factor:
            raise ValueError(f"cannot up-sample by {factor} at jump {self.jump}")
        fine = self.jump // factor
        return Span(self.lo - (factor - 1) * fine, self.hi, fine)

    def union(self, other: Span) -> Span:
        """Dependencies of a concatenation of two branches at the same jump."""
        if self.jump != other.jump:
            raise ValueError(f"cannot join spans at jumps {self.jump} and {other.jump}")
        return Span(min(self.lo, other.lo), max(self.hi, other.hi), self.jump)

    @property
    def size(self) -> int:
        """Width of the receptive field in input pixels (e.g. 31 for a 31x31 field)."""
        return self.hi - self.lo + 1

    @property
    def margin(self) -> int:
        """Pixels of context needed on each side of an output region."""
        return max(-self.lo, self.hi)
