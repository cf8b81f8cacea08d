"""The adaptive linear path: linear filters blended per pixel by the local gradient strength.

A denoiser smooths flat regions more than edges, which one shift-equivariant
filter cannot do. Here a first least-squares filter (:class:`LinearFilter`)
gives a clean estimate of the output; the strength of that estimate's
gradients (the square root of the structure tensor's trace over a Gaussian
window) places each pixel between ``bins`` knots, the quantiles of the
example's strengths on a log scale; the output is the blend of the two nearest
knots' filters, weighted by where the pixel lies between them. Given the blend
weights the output is linear in the filters, so all of them are solved together
in closed form, with a ridge that pulls each toward the first filter (a knot
few pixels reach stays near it). A linear target is still copied exactly: its
filter is every knot's solution.

With a 256 x 256 example, five knots of 15 x 15 filters copy MAXIM denoising
(sigma 25) at 32.06 dB on other photographs, against 30.49 dB for the single
filter and 30.81-31.16 for U-Nets trained on top of it for 15 minutes on a 2-core
Xeon (docs/FIDELITY.md, "The adaptive linear path").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onepair.models.linear import LinearFilter, Spectra, as_lists, correlate

SIGMA = 2.0  # the structure tensor's Gaussian window, in input pixels
PRIOR = 10.0  # the ridge toward the first filter, worth this many pixels of evidence
MAX_UNKNOWNS = 8192  # bins * (Cin * k * k + 1): the joint system is this squared, in float64
_FLOOR = 1e-8  # strengths below this count as this (flat regions)


class AdaptiveFilter(nn.Module):
    """``bins`` filters ``kernel x kernel`` from ``in_channels`` to ``out_channels`` at
    ``scale``, blended per pixel by gradient strength; set by :meth:`solve`, not trained."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, kernel: int, bins: int):
        super().__init__()
        if bins < 2:
            raise ValueError(f"linear_bins is {bins}; an adaptive path needs at least 2")
        unknowns = bins * (in_channels * kernel * kernel + 1)
        if unknowns > MAX_UNKNOWNS:
            raise ValueError(
                f"linear_bins {bins} with a {kernel}x{kernel} filter on {in_channels} channels "
                f"is {unknowns} unknowns, more than the {MAX_UNKNOWNS} one system may have; "
                "use fewer bins or a smaller linear_kernel"
            )
        self.kernel, self.scale, self.bins, self.out_channels = kernel, scale, bins, out_channels
        self.first = LinearFilter(in_channels, out_channels, scale, kernel)
        self.bank = LinearFilter(in_channels, out_channels * bins, scale, kernel)
        self.register_buffer("knots", torch.arange(bins, dtype=torch.float32))  # log strengths
        window = math.ceil(3 * SIGMA)
        taps = torch.exp(-0.5 * (torch.arange(-window, window + 1) / SIGMA) ** 2)
        self.register_buffer("taps", taps / taps.sum(), persistent=False)
        # an output pixel sees the bank's filter, and the first filter's estimate over the
        # gradient's and the window's reach
        self.radius = kernel // 2 + 1 + window
        self._cached: tuple[tuple, torch.Tensor] = ((), torch.empty(0))
        self._spectra = Spectra()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one correlation gives the strengths' gradients and every bin's output: the
        # input's spectrum is taken once (linear.correlate)
        y = correlate(x, self._kernels(), None, self._spectra, self._cached[0])
        weights = _hats(self._strength(y[:, :2]), self.knots)  # (N, bins, H, W)
        bank = (y[:, 2:] + self.bank.bias[:, None, None]).unflatten(1, (self.bins, -1))
        weights = weights.to(bank.dtype)[:, :, None]
        out = bank[:, 0] * weights[:, 0]  # one bin at a time: 3.5x faster than einsum
        for b in range(1, self.bins):
            out += bank[:, b] * weights[:, b]
        return F.pixel_shuffle(out, self.scale) if self.scale > 1 else out

    def strength(self, x: torch.Tensor) -> torch.Tensor:
        """Log gradient strength of the first filter's estimate (its mean over channels and
        output phases), (N, 1, H, W) at input size."""
        return self._strength(correlate(x, self._kernels()[:2], None, Spectra()))

    def _kernels(self) -> torch.Tensor:
        """(2 + bins * Cout*s*s, Cin, k + 2, k + 2): the horizontal and vertical central
        differences of the first filter's mean output, then the bins' filters (zero
        taps around them); kept until the filters change."""
        first, bank = self.first.weight, self.bank.weight
        key = (first.device, first._version, first.data_ptr(), bank._version, bank.data_ptr())
        if self._cached[0] != key:
            mean = first.mean(0, keepdim=True)  # linear: the filter of the outputs' mean
            gx = 0.5 * (F.pad(mean, (2, 0, 1, 1)) - F.pad(mean, (0, 2, 1, 1)))
            gy = 0.5 * (F.pad(mean, (1, 1, 2, 0)) - F.pad(mean, (1, 1, 0, 2)))
            self._cached = (key, torch.cat([gx, gy, F.pad(bank, (1, 1, 1, 1))]))
        return self._cached[1]

    def _strength(self, gradients: torch.Tensor) -> torch.Tensor:
        """Log square root of the windowed ``gx**2 + gy**2``, (N, 2, H, W) -> (N, 1, H, W)."""
        energy = gradients.float().square().sum(1, keepdim=True)
        for axis in (-1, -2):  # the separable window, zero-padded, as shifted sums: one
            energy = _window(energy, self.taps, axis)  # channel is slow in conv2d (2x)
        return energy.clamp_min(0).sqrt().clamp_min(_FLOOR).log()

    def blend(self, x: torch.Tensor) -> torch.Tensor:
        """Each pixel's weights over the bins' filters, (N, bins, H, W): at most two
        neighbouring knots share a pixel, and its weights sum to 1."""
        return _hats(self.strength(x), self.knots)

    @torch.no_grad()
    def solve(
        self,
        x: np.ndarray | Sequence[np.ndarray],
        y: np.ndarray | Sequence[np.ndarray],
        ridge: float = 1e-6,
        max_rows: int = 65_536,
        seed: int = 0,
        chunk_rows: int = 4096,
        keep: Sequence[np.ndarray | None] | None = None,
        transforms: Sequence[str] = ("identity",),
    ) -> None:
        """Solve the first filter, place the knots, then solve the bins' filters together.

        Arguments as for :meth:`LinearFilter.solve`; ``keep`` also decides which
        pixels' strengths place the knots. The strengths commute with flips and
        rotations when the first filter does, so with ``transforms`` every system is
        that of the transformed examples too, permuted (:meth:`LinearFilter.over`).
        """
        xs, ys = as_lists(x, y)
        keeps = list(keep) if keep is not None else [None] * len(xs)
        self.first.solve(xs, ys, ridge, max_rows, seed, chunk_rows, keeps, transforms)
        logs = [self._strength_image(a) for a in xs]
        kept = np.concatenate(
            [s[m] if m is not None else s.ravel() for s, m in zip(logs, keeps, strict=True)]
        )
        # the systems are built on the host, whatever device the path is on
        knots = torch.from_numpy(np.quantile(kept, np.linspace(0, 1, self.bins)))
        self.knots.copy_(knots)
        blends = [_hats(torch.from_numpy(s)[None, None], knots)[0].double() for s in logs]
        first = torch.cat([self.first.weight.flatten(1), self.first.bias[:, None]], 1)
        first = first.T.double().cpu()
        unknowns = first.shape[0]
        normal = torch.zeros(self.bins * unknowns, self.bins * unknowns, dtype=torch.float64)
        rhs = torch.zeros(self.bins * unknowns, first.shape[1], dtype=torch.float64)
        energy, rows = 0.0, 0
        for design, targets, weights in self.first.design_rows(
            xs, ys, max_rows, seed, chunk_rows, keeps, blends
        ):
            energy += float((design * design).sum())
            rows += len(design)
            for i in range(self.bins):
                part = slice(i * unknowns, (i + 1) * unknowns)
                rhs[part] += (design * weights[:, i : i + 1]).T @ targets
                for j in (i, i + 1)[: self.bins - i]:
                    both = weights[:, i] * weights[:, j]
                    used = both > 0
                    if not used.any():
                        continue
                    rows_ij = design[used]
                    block = (rows_ij * both[used, None]).T @ rows_ij
                    normal[part, j * unknowns : (j + 1) * unknowns] += block
                    if j != i:
                        normal[j * unknowns : (j + 1) * unknowns, part] += block.T
        if not rows:
            self.bank.weight.copy_(self.first.weight.repeat(self.bins, 1, 1, 1))
            self.bank.bias.copy_(self.first.bias.repeat(self.bins))
            return
        normal, rhs = self.first.over(transforms, normal, rhs, self.bins)
        pull = PRIOR * energy / (rows * unknowns)
        normal += torch.eye(len(normal), dtype=normal.dtype) * (
            pull + ridge * normal.diagonal().mean()
        )
        rhs += pull * first.repeat(self.bins, 1)
        solution = torch.linalg.solve(normal, rhs)  # (bins * D, Cout*s*s)
        per_bin = solution.reshape(self.bins, unknowns, -1).transpose(1, 2)  # (bins, Cout*s*s, D)
        flat = per_bin.reshape(-1, unknowns).float()  # row (b * Cout + c) * s*s + phase
        self.bank.weight.copy_(flat[:, :-1].reshape(self.bank.weight.shape))
        self.bank.bias.copy_(flat[:, -1])

    def _strength_image(self, x: np.ndarray) -> np.ndarray:
        """Log strengths (H, W) of a whole input, borders reflected as in apply."""
        return on_whole(self.strength, x, self.radius, device=self.knots.device)[..., 0]


def _window(x: torch.Tensor, taps: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` correlated with ``taps`` along ``axis`` (-1 or -2), zero-padded to its size."""
    r, n = len(taps) // 2, x.shape[axis]
    padded = F.pad(x, (r, r) if axis == -1 else (0, 0, r, r))
    out = padded.narrow(axis, 0, n) * taps[0]
    for i in range(1, len(taps)):
        out += padded.narrow(axis, i, n) * taps[i]
    return out


def _hats(strength: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear weights of (N, 1, H, W) ``strength`` over increasing ``knots``:
    (N, bins, H, W), clamped to the end knots outside them."""
    bins = len(knots)
    knots = knots.to(strength.dtype)
    index = torch.searchsorted(knots, strength.contiguous(), right=True) - 1
    index = index.clamp(0, bins - 2)
    low, high = knots[index], knots[index + 1]
    frac = ((strength - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    weights = torch.zeros(strength.shape[0], bins, *strength.shape[2:], dtype=strength.dtype)
    weights = weights.to(strength.device)
    weights.scatter_(1, index, 1 - frac)
    return weights.scatter_add_(1, index + 1, frac)


def on_whole(
    function: Callable[[torch.Tensor], torch.Tensor],
    x: np.ndarray,
    radius: int,
    scale: int = 1,
    device: torch.device | None = None,
) -> np.ndarray:
    """``function`` of a whole (H, W, C) input on ``device`` with ``radius`` pixels of its
    borders reflected around it, as apply pads, cut back to (scale*H, scale*W, C')."""
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float().to(device)
    pad = radius if min(t.shape[-2:]) > radius else 0
    y = function(F.pad(t, (pad, pad, pad, pad), mode="reflect") if pad else t)[0]
    cut = scale * pad
    return y[:, cut : y.shape[1] - cut, cut : y.shape[2] - cut].permute(1, 2, 0).cpu().numpy()
