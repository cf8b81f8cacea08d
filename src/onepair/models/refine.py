"""A small CNN that corrects the linear path, one colour channel at a time.

The refiner of ``--preset refined`` (:class:`onepair.models.filter.FilterNet`) sees,
for each channel ``c`` of an image whose input and output have the same channels:
the input ``x_c``, the linear path's output ``f_c`` (its ``scale**2`` phases at
input resolution) and one summary shared by all channels, the mean over channels
of ``x_c - f_c`` (what the path took away: noise, where the channels' noise is
independent, is not correlated across them as structure is). The same weights
serve every channel, so what is learnt is a function of one channel's values and
the shared summary, never a mapping between colours.

That is what makes it carry from the example to other images. On the MAXIM
denoiser (sigma 25), every correction that could mix colours learnt one the
example's colours call for and other photographs do not: a 3-layer CNN of 3 x 3
convolutions on all channels of ``x`` and ``f`` lost 2 dB on the held-out
photographs, a pointwise one 1.2 dB. Shared across channels it gains on every
photograph-denoiser target of the fidelity benchmark (docs/FIDELITY.md,
"A refiner shared across colour channels").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.1  # of the leaky units
# Without gradients on a CPU, the body runs on bands of rows whose widest layer holds
# about this many bytes: a whole 512-pixel tile's layers (29 MB at width 8) stream
# through memory at each convolution, a band's stay in cache. On a 2-core EPYC (32 MB
# L3) the bodies ran 1.6-1.8x faster and `refined`'s apply 1.5x, with the same result
# (docs/PERFORMANCE.md, "The refiner in bands").
BAND_BYTES = 8 << 20
MIN_BAND_ROWS = 16


class ChannelRefiner(nn.Module):
    """``layers`` 3 x 3 convolutions of ``width`` channels, shared across the image's
    ``channels``; input (N, channels * (1 + scale**2), H, W): ``x`` then the path's output
    pixel-unshuffled; output (N, channels, scale*H, scale*W), zero until trained."""

    def __init__(self, channels: int, scale: int, layers: int, width: int):
        super().__init__()
        if layers < 1 or width < 1:
            raise ValueError(f"refiner of {layers} layers of width {width}; expected both >= 1")
        self.channels, self.scale, self.width, self.layers = channels, scale, width, layers
        phases = scale * scale
        convs: list[nn.Module] = []
        c = 2 + phases  # x_c, f_c's phases, the shared mean of x - f
        for _ in range(layers - 1):
            convs += [nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(SLOPE, inplace=True)]
            c = width
        last = nn.Conv2d(c, phases, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*convs, last)

    def forward(self, xf: torch.Tensor) -> torch.Tensor:
        n, _, h, w = xf.shape
        c, p = self.channels, self.scale * self.scale
        x = xf[:, :c]
        f = xf[:, c:].reshape(n, c, p, h, w)
        taken = (x - f.mean(2)).mean(1, keepdim=True)  # (N, 1, H, W)
        z = torch.cat([x[:, :, None], f, taken[:, None].expand(n, c, 1, h, w)], 2)
        out = self.run_body(z.reshape(n * c, 2 + p, h, w)).reshape(n, c * p, h, w)
        return F.pixel_shuffle(out, self.scale) if self.scale > 1 else out

    def run_body(self, z: torch.Tensor) -> torch.Tensor:
        """``self.body(z)``; without gradients on a CPU, one band of rows at a time, each
        with the ``layers`` rows above and below that its convolutions reach (zero
        padding falls where it would on the whole: at the image's top and bottom)."""
        batch, _, h, w = z.shape
        rows = band_rows(batch, self.width, w)
        if z.device.type != "cpu" or torch.is_grad_enabled() or h <= rows:
            return self.body(z)
        reach, bands = self.layers, []
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            start, stop = max(0, top - reach), min(h, bottom + reach)
            bands.append(self.body(z[:, :, start:stop])[:, :, top - start : bottom - start])
        return torch.cat(bands, 2)


def band_rows(batch: int, width: int, columns: int) -> int:
    """Rows per band so that a layer of ``width`` channels holds about BAND_BYTES."""
    return max(MIN_BAND_ROWS, BAND_BYTES // (4 * batch * width * columns))


def joined(x: torch.Tensor, path_output: torch.Tensor, scale: int) -> torch.Tensor:
    """The refiner's input: ``x`` and the path's output at input resolution."""
    lowres = F.pixel_unshuffle(path_output, scale) if scale > 1 else path_output
    return torch.cat([x, lowres.to(x.dtype)], 1)
