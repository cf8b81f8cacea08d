"""The losses teachers train with: L2, L1, perceptual (ST-LPIPS), adversarial, cross-entropy.

The paper's ablation over the loss a target was trained with (DESIGN.md)
needs targets trained with each: ``perceptual`` = L1 + 0.1 ST-LPIPS (the
shift-tolerant LPIPS of Ghildyal & Liu, AlexNet trunk, weights shipped in the
``stlpips-pytorch`` wheel); ``adversarial`` = L1 + 0.01 non-saturating GAN loss
of a small conditional PatchGAN (pix2pix's weighting, 1 : 100), whose own
Adam step follows each teacher step. ``cross-entropy`` is the tissue
classifier's, on logits against per-pixel class probabilities.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn

from onepair.standins import stand_ins

PERCEPTUAL_WEIGHT = 0.1
ADVERSARIAL_WEIGHT = 0.01
DISCRIMINATOR_LR = 2e-4


def st_lpips(device: torch.device | str = "cpu") -> nn.Module:
    """ST-LPIPS (AlexNet, shift-tolerant), frozen: ``d(x, y, normalize=True)`` -> (B, 1, 1, 1).

    Inputs (B, 3, H, W) in [0, 1] with ``normalize=True``; 0 for identical
    images. Its modules import torchvision, IPython and torchsummary at top
    level but use none of them on this path: those not installed get empty
    stand-in modules for the duration of the import only (then removed from
    ``sys.modules``, so nothing else sees them). Install the package with
    ``pip install --no-deps stlpips-pytorch``.
    """
    if importlib.util.find_spec("stlpips_pytorch") is None:
        raise ModuleNotFoundError(
            "the perceptual loss needs ST-LPIPS: pip install --no-deps stlpips-pytorch"
        )
    with stand_ins(("torchvision", "IPython", "torchsummary"), "ST-LPIPS's unused imports"):
        from stlpips_pytorch import stlpips
    metric = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
    return metric.requires_grad_(False).eval().to(device)


def patch_discriminator(channels: int) -> nn.Module:
    """Conditional PatchGAN: (B, Cin + Cout, H, W) -> (B, 1, H/4, W/4) real-vs-fake logits.

    Each logit judges an 18 x 18 patch of the (input, output) pair.
    """
    return nn.Sequential(
        nn.Conv2d(channels, 32, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 1, 3, padding=1),
    )


def _rgb(t: torch.Tensor) -> torch.Tensor:
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


class Criterion:
    """``criterion(x, prediction, target)`` -> scalar loss of one teacher step.

    ``x`` (B, Cin, h, w) is the network's input, ``prediction`` and ``target``
    (B, Cout, h, w); for ``cross-entropy`` the prediction is logits and the
    target class probabilities. With ``adversarial`` it owns the discriminator
    and its optimizer; :meth:`train_discriminator` takes their step.
    """

    def __init__(self, loss: str, pair_channels: int, device: torch.device | str = "cpu"):
        self.loss = loss
        self.lpips = st_lpips(device) if loss == "perceptual" else None
        self.discriminator: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        if loss == "adversarial":
            self.discriminator = patch_discriminator(pair_channels).to(device)
            self.optimizer = torch.optim.Adam(
                self.discriminator.parameters(), lr=DISCRIMINATOR_LR, betas=(0.5, 0.999)
            )

    def __call__(self, x: torch.Tensor, prediction: torch.Tensor, target: torch.Tensor):
        if self.loss == "cross-entropy":
            return F.cross_entropy(prediction, target)
        if self.loss == "l2":
            return F.mse_loss(prediction, target)
        value = F.l1_loss(prediction, target)
        if self.lpips is not None:
            distance = self.lpips(_rgb(prediction), _rgb(target), normalize=True)
            value = value + PERCEPTUAL_WEIGHT * distance.mean()
        if self.discriminator is not None:  # non-saturating: -log D(x, G(x))
            fake = self.discriminator(torch.cat([x, prediction], dim=1))
            value = value + ADVERSARIAL_WEIGHT * F.softplus(-fake).mean()
        return value

    def train_discriminator(self, x: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> None:
        """One Adam step of the discriminator on real and (detached) fake pairs, if any."""
        if self.discriminator is None or self.optimizer is None:
            return
        d_real = self.discriminator(torch.cat([x, real], dim=1))
        d_fake = self.discriminator(torch.cat([x, fake.detach()], dim=1))
        value = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        self.optimizer.step()
