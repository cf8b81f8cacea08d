"""The linear path: a shift-equivariant filter solved by least squares on the example.

For a target that is linear and shift-equivariant, the best filter of a given
size is the least-squares solution over the example's patches, and it is
exact when the patches span the kernel space (Theorem 1, DESIGN.md). Gradient
descent from zero converges to the same solution; solving it in closed form
costs one ``D x D`` system, ``D = Cin * k * k + 1``. With a scale factor the
filter predicts all ``s * s`` output phases of each input pixel (pixel shuffle).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len
from torch import nn

from onepair import dihedral

# Kernels from this size on inputs from this side on are applied through the FFT
# (docs/PERFORMANCE.md: 15x15 on 3 channels runs several times faster that way).
FFT_MIN_KERNEL = 7
FFT_MIN_SIDE = 96
# The FFT on CUDA devices too: 2.3 ms against 10.2 ms for a direct 15x15 filter of
# a 2048 x 2048 tile on an H200 (docs/PERFORMANCE.md, "On a GPU").
FFT_ON_CUDA = True


class LinearFilter(nn.Module):
    """A fixed ``kernel x kernel`` filter from ``in_channels`` to ``out_channels * scale**2``.

    Weights are buffers, not parameters: they are set by :meth:`solve` and not
    trained. Zero padding; the tiling margin covers it.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int, kernel: int):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"linear_kernel is {kernel}; expected an odd size >= 1")
        self.kernel = kernel
        self.scale = scale
        n_out = out_channels * scale * scale
        self.register_buffer("weight", torch.zeros(n_out, in_channels, kernel, kernel))
        self.register_buffer("bias", torch.zeros(n_out))
        self._spectra = Spectra()
        # input channels from this one on are pixel-unshuffled output phases (a cascade's
        # second stage at scale > 1): a flip or rotation permutes them as it does the output's
        self.phased_from: int | None = None

    @property
    def radius(self) -> int:
        """Input pixels each side that an output pixel depends on."""
        return self.kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = correlate(x, self.weight, self.bias, self._spectra)
        return F.pixel_shuffle(y, self.scale) if self.scale > 1 else y

    @torch.no_grad()
    def solve(
        self,
        x: np.ndarray | Sequence[np.ndarray],
        y: np.ndarray | Sequence[np.ndarray],
        ridge: float = 1e-6,
        max_rows: int = 65_536,
        seed: int = 0,
        chunk_rows: int = 16_384,
        keep: Sequence[np.ndarray | None] | None = None,
        transforms: Sequence[str] = ("identity",),
    ) -> None:
        """Set the filter to the least-squares fit ``y ~ filter(x)`` over valid patches.

        ``x`` (H, W, Cin) and ``y`` (s*H, s*W, Cout) in the image convention, or
        equal-length lists of such images (several examples: their normal
        equations add up). ``ridge`` is relative to the mean diagonal of the
        normal matrix. At most ``max_rows`` patch positions (a seeded random
        subset, shared among the examples by their patch counts) enter the
        system, gathered ``chunk_rows`` at a time, so memory stays bounded.
        ``keep``, one (H, W) boolean map per example (or None), names the input
        pixels whose outputs may be learnt from: patches centred elsewhere (the
        held-out blocks) are left out. ``transforms`` (names of :mod:`onepair.dihedral`)
        solves on every example under each of them, as extra pairs of a target that
        commutes with them (see :meth:`over`).
        """
        xs, ys = as_lists(x, y)
        keeps = list(keep) if keep is not None else [None] * len(xs)
        normal = rhs = None
        for design, targets, _ in self.design_rows(xs, ys, max_rows, seed, chunk_rows, keeps):
            part, part_rhs = design.T @ design, design.T @ targets
            normal = part if normal is None else normal + part
            rhs = part_rhs if rhs is None else rhs + part_rhs
        if normal is None or rhs is None:
            return  # too small to hold one patch: keep the zero filter
        normal, rhs = self.over(transforms, normal, rhs)
        normal += torch.eye(normal.shape[0], dtype=normal.dtype) * (
            ridge * normal.diagonal().mean()
        )
        solution = torch.linalg.solve(normal, rhs)  # (D, Cout*s*s)
        self.weight.copy_(solution[:-1].T.reshape(self.weight.shape).float())
        self.bias.copy_(solution[-1].float())

    def over(
        self, transforms: Sequence[str], normal: torch.Tensor, rhs: torch.Tensor, blocks: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The normal equations of the examples under each of ``transforms``, averaged.

        A flip or rotation of the example flips or rotates every patch and every output
        pixel's phases about their centres, so the rows of the transformed example are
        those of the example with their columns permuted: its system is this one's,
        permuted, and no patch is gathered again. ``blocks`` systems of this filter's
        unknowns side by side (the adaptive path's bins) are permuted alike. Over a
        whole group (all eight, or one flip) the solution commutes with it.
        """
        if list(transforms) in ([], ["identity"]):
            return normal, rhs
        total_normal, total_rhs = torch.zeros_like(normal), torch.zeros_like(rhs)
        for name in transforms:
            columns, outputs = self.orders(name)
            columns = (torch.arange(blocks)[:, None] * len(columns) + columns).ravel()
            total_normal += normal[columns][:, columns]
            total_rhs += rhs[columns][:, outputs]
        return total_normal / len(transforms), total_rhs / len(transforms)

    def orders(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Where a least-squares row of the example under the transform ``name`` takes its
        entries from in the example's row at the same pixel: indices of the design
        columns (Cin*k*k + 1) and of the target columns (Cout*s*s)."""
        k, s = self.kernel, self.scale
        cin, cout = self.weight.shape[1], self.weight.shape[0] // (s * s)
        taps, phases = _grid(k, name), _grid(s, name)
        channels = np.arange(cin)
        if self.phased_from is not None and s > 1:
            start = self.phased_from
            groups = np.arange((cin - start) // (s * s))[:, None] * s * s
            channels[start:] = start + (groups + phases).ravel()
        design = np.append((channels[:, None] * k * k + taps).ravel(), cin * k * k)
        targets = (np.arange(cout)[:, None] * s * s + phases).ravel()
        return torch.from_numpy(design), torch.from_numpy(targets)

    def design_rows(
        self,
        xs: Sequence[np.ndarray],
        ys: Sequence[np.ndarray],
        max_rows: int,
        seed: int,
        chunk_rows: int,
        keeps: Sequence[np.ndarray | None],
        blends: Sequence[torch.Tensor] | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """The least-squares rows of the examples' valid patches, a chunk at a time:
        ``(design, targets, weights)``, float64, (n, Cin*k*k + 1) with a column of ones,
        (n, Cout*s*s) output phases, and each row's entry of ``blends`` (one (B, H, W)
        map per example; None without them). At most ``max_rows`` rows in all: a seeded
        random subset, shared among the examples by their patch counts."""
        k = self.kernel
        usable = [
            (index, self._positions(a.shape[:2], m))
            for index, (a, m) in enumerate(zip(xs, keeps, strict=True))
            if min(a.shape[:2]) >= k
        ]
        total = sum(len(p) for _, p in usable)
        for order, (index, positions) in enumerate(usable):
            count = len(positions)
            if not count:
                continue
            rows = max(1, round(max_rows * count / total)) if total > max_rows else count
            blend = blends[index] if blends is not None else None
            yield from self._rows(
                xs[index], ys[index], positions, rows, seed + order, chunk_rows, blend
            )

    def _positions(self, size: tuple[int, ...], keep: np.ndarray | None) -> torch.Tensor:
        """Flat indices of the top-left corners of the valid patches whose centre is kept."""
        k, (h, w) = self.kernel, size[:2]
        if keep is None:
            return torch.arange((h - k + 1) * (w - k + 1))
        r = k // 2
        centres = keep[r : r + h - k + 1, r : r + w - k + 1]
        return torch.from_numpy(np.flatnonzero(centres))

    def _rows(
        self,
        x: np.ndarray,
        y: np.ndarray,
        positions: torch.Tensor,
        max_rows: int,
        seed: int,
        chunk_rows: int,
        blend: torch.Tensor | None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """One example's rows (a seeded subset of ``max_rows``), ``chunk_rows`` at a time."""
        k, s = self.kernel, self.scale
        h, w, _ = x.shape
        r = k // 2
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).double()
        # output phases: channel c*s*s + a*s + b holds y[s*i + a, s*j + b, c]
        yt = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1))).double()
        cout = yt.shape[0]
        phases = yt.reshape(cout, h, s, w, s).permute(0, 2, 4, 1, 3).reshape(cout * s * s, h, w)
        # patch positions (top-left corners): all given, or a seeded subset of max_rows
        count = len(positions)
        if count > max_rows:
            order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
            positions = positions[order[:max_rows].sort().values]
        offsets = torch.arange(k)
        for chunk in positions.split(chunk_rows):  # bounded memory for any example size
            rows, cols = chunk // (w - k + 1), chunk % (w - k + 1)
            patches = xt[:, rows[:, None, None] + offsets[:, None], cols[:, None, None] + offsets]
            design = patches.permute(1, 0, 2, 3).reshape(len(chunk), -1)  # (n, Cin*k*k)
            design = torch.cat([design, torch.ones(len(chunk), 1, dtype=design.dtype)], 1)
            targets = phases[:, rows + r, cols + r].T  # (n, Cout*s*s)
            weights = blend[:, rows + r, cols + r].T if blend is not None else None
            yield design, targets, weights


class Spectra:
    """The flipped kernel's spectrum, (Cin, H', W'/2+1, Cout), at the sizes an image's tiles
    have (full ones, the last column's and row's), kept until the kernel changes."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._sizes: dict[tuple, torch.Tensor] = {}

    def __call__(
        self, weight: torch.Tensor, size: tuple[int, int], dtype: torch.dtype, key: tuple = ()
    ) -> torch.Tensor:
        """``key`` names the kernel (by default the buffer ``weight`` as it is now)."""
        key = key or (weight.device, weight._version, weight.data_ptr(), tuple(weight.shape))
        if key != self._key:
            self._key, self._sizes = key, {}
        if (size, dtype) not in self._sizes:
            if len(self._sizes) >= 4:
                self._sizes.clear()
            spectrum = torch.fft.rfft2(weight.flip(-2, -1).to(dtype), s=size)
            self._sizes[size, dtype] = spectrum.permute(1, 2, 3, 0).contiguous()
        return self._sizes[size, dtype]


def correlate(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spectra: Spectra,
    key: tuple = (),
) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=kernel // 2)``, through the FFT where that is faster:
    the same zero-padded correlation up to float rounding (about 1e-6), in a few
    operations per pixel instead of ``Cin * Cout * kernel**2`` multiply-adds. ``key``
    names a kernel that is not a buffer (:class:`Spectra`)."""
    k = weight.shape[-1]
    fft = FFT_ON_CUDA or x.device.type != "cuda"
    if not (fft and k >= FFT_MIN_KERNEL and min(x.shape[-2:]) >= FFT_MIN_SIDE):
        # channels-last: the default CPU path for a large kernel on few channels is
        # pathologically slow on big inputs (9.6 s vs 0.2 s for 1024x1024, 15x15, 3->3)
        x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, weight, bias, padding=k // 2)
    r, (h, w) = k // 2, x.shape[-2:]
    # at least H + k - 1: a linear, not circular, convolution; rounded up to a length
    # with small prime factors, which the FFT does several times faster (558 -> 560: 3x)
    size = (next_fast_len(h + k - 1, real=True), next_fast_len(w + k - 1, real=True))
    x = x.contiguous() if x.dtype == torch.float64 else x.contiguous().float()
    spectrum = torch.fft.rfft2(x, s=size)  # (B, Cin, H', W'/2+1)
    kernel = spectra(weight, size, x.dtype, key)  # (Cin, H', W'/2+1, Cout)
    # summed over the input channels one at a time, output channels innermost (which the
    # inverse FFT also takes faster): 1.8x faster than einsum (docs/PERFORMANCE.md)
    spectrum = spectrum.permute(0, 2, 3, 1)
    product = spectrum[..., :1] * kernel[0]
    for c in range(1, len(kernel)):
        product += spectrum[..., c : c + 1] * kernel[c]
    y = torch.fft.irfft2(product.permute(0, 3, 1, 2), s=size)[..., r : r + h, r : r + w]
    return y + bias[:, None, None] if bias is not None else y


def _grid(n: int, name: str) -> np.ndarray:
    """The indices of an ``n x n`` grid under the transform ``name``, flattened."""
    return dihedral.forward(np.arange(n * n).reshape(n, n), name).ravel()


def as_lists(
    x: np.ndarray | Sequence[np.ndarray], y: np.ndarray | Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One example (two arrays) or several (two sequences) as two lists."""
    return ([x] if isinstance(x, np.ndarray) else list(x)), (
        [y] if isinstance(y, np.ndarray) else list(y)
    )
