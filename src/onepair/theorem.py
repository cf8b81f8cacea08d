"""Theorem 1 of the paper, shown numerically: one example pins down a linear filter.

Setting (DESIGN.md; the paper rephrases Phuong & Lampert, ICML 2019): a
single-channel linear shift-equivariant model ``y = k * x`` (correlation) with
a ``kh x kw`` kernel. Its L2 objective on one example,
``L(k) = ||P k - y||^2 / (2 N)``, is a least-squares problem whose rows are the
example's ``N`` patches ``P``. Gradient descent from ``k = 0`` never leaves the
span of the patches, so it converges to the minimum-norm minimiser
``pinv(P) y = pinv(P) P k_true``: the projection of the true kernel onto the
patches' span. Hence it recovers the kernel exactly when the patches span the
kernel space (``N >= kh*kw`` patches in general position, e.g. a noise image),
and otherwise exactly its projection -- never more.

Here the example's *output* is ``n x m`` so there are exactly ``n*m`` patches:
the input is ``(n + kh - 1) x (m + kw - 1)`` and the correlation is 'valid'.
Everything is float64; the step is ``1/L`` with ``L`` the largest eigenvalue
of the patch Gram matrix ``P^T P / N``.

>>> demonstrate((5, 5), (16, 16)).error < 1e-4
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TheoremResult:
    """A recovery experiment: kernels are (kh, kw) float64 arrays; the example's
    output is the 'valid' correlation of ``input`` with ``kernel``.

    ``error``: ||recovered - kernel|| / ||kernel||; ``projection_error``:
    ||recovered - projection|| / ||projection||; ``rank`` of the (patches, dims)
    patch matrix; ``spans``: rank == dims; ``steps`` taken (fewer than asked
    when the gradient vanished: ``converged``); ``loss``: the final L2 objective
    (mean squared residual / 2).
    """

    kernel: np.ndarray = field(repr=False)
    recovered: np.ndarray = field(repr=False)
    projection: np.ndarray = field(repr=False)
    input: np.ndarray = field(repr=False)  # (n + kh - 1, m + kw - 1): the example's input
    example: tuple[int, int]
    error: float
    projection_error: float
    patches: int
    dims: int
    rank: int
    spans: bool
    steps: int
    converged: bool
    loss: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers, and the three kernels as nested lists."""
        return {
            "kernel_size": list(self.kernel.shape),
            "example": list(self.example),
            "input_size": [
                self.example[0] + self.kernel.shape[0] - 1,
                self.example[1] + self.kernel.shape[1] - 1,
            ],
            "patches": self.patches,
            "dims": self.dims,
            "rank": self.rank,
            "spans": self.spans,
            "error": self.error,
            "projection_error": self.projection_error,
            "steps": self.steps,
            "converged": self.converged,
            "loss": self.loss,
            "seed": self.seed,
            "kernel": self.kernel.tolist(),
            "recovered": self.recovered.tolist(),
            "projection": self.projection.tolist(),
        }


def demonstrate(
    kernel: tuple[int, int] = (5, 5),
    example: tuple[int, int] = (16, 16),
    steps: int = 50_000,
    seed: int = 0,
    tolerance: float = 1e-12,
) -> TheoremResult:
    """Recover a random ``kernel`` (kh, kw) from one example with an ``example``
    (n, m) output by gradient descent from zero.

    The input and the true kernel are standard normal (seeded). Descent stops
    after ``steps`` or when the gradient's norm falls below ``tolerance`` times
    its norm at zero. Near-square cases (``n*m`` close to ``kh*kw``) are badly
    conditioned and may need many steps; ``converged`` says whether they ended.
    """
    kh, kw = _pair(kernel, "kernel")
    n, m = _pair(example, "example")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps is {steps!r}; expected an integer >= 1")
    generator = torch.Generator().manual_seed(seed)
    true = torch.randn(kh, kw, generator=generator, dtype=torch.float64)
    x = torch.randn(1, 1, n + kh - 1, m + kw - 1, generator=generator, dtype=torch.float64)
    y = F.conv2d(x, true[None, None]).flatten()  # (n*m,) 'valid' correlation
    patches = F.unfold(x, (kh, kw))[0].T  # (n*m, kh*kw): row i is the patch under y[i]
    count = patches.shape[0]
    gram = patches.T @ patches / count  # Hessian of the objective
    moment = patches.T @ y / count  # minus its gradient at k = 0
    step = 1.0 / float(torch.linalg.eigvalsh(gram)[-1])
    k = torch.zeros(kh * kw, dtype=torch.float64)
    limit = tolerance * float(moment.norm())
    taken, converged = 0, False
    while taken < steps:
        gradient = gram @ k - moment
        if float(gradient.norm()) <= limit:
            converged = True
            break
        k = k - step * gradient
        taken += 1
    projection = torch.linalg.pinv(patches) @ y
    residual = patches @ k - y
    rank = int(torch.linalg.matrix_rank(patches))
    return TheoremResult(
        kernel=true.numpy(),
        recovered=k.reshape(kh, kw).numpy(),
        projection=projection.reshape(kh, kw).numpy(),
        input=x[0, 0].numpy(),
        example=(n, m),
        error=float((k - true.flatten()).norm() / true.norm()),
        projection_error=float((k - projection).norm() / projection.norm()),
        patches=count,
        dims=kh * kw,
        rank=rank,
        spans=rank == kh * kw,
        steps=taken,
        converged=converged,
        loss=float(residual.square().mean() / 2),
        seed=seed,
    )


def parse_size(text: str, name: str) -> tuple[int, int]:
    """``'5x7'`` (or ``'5'``) -> (5, 7); ValueError naming ``name`` otherwise."""
    parts = text.lower().split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"{name} is {text!r}; expected ROWSxCOLS with positive integers, e.g. 5x5")
    return values[0], values[1]


def _pair(value: tuple[int, int], name: str) -> tuple[int, int]:
    try:
        rows, cols = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {value!r}; expected (rows, cols)") from None
    for v in (rows, cols):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} is {value!r}; expected two integers >= 1")
    return int(rows), int(cols)


__all__ = ["TheoremResult", "demonstrate", "parse_size"]
