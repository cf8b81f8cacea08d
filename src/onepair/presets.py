"""Named recipes: an imitator architecture with its training settings.

``default`` is onepair's recipe: the adaptive linear path, solved in closed form,
with a small CNN shared across colour channels trained on top of it to correct it
(:mod:`onepair.models.adaptive`, :mod:`onepair.models.refine`); ``refined-light`` is
the same recipe under its own name. ``default-gpu`` is the default with batches of 64
crops at twice the learning rate; ``onepair fit`` picks it on CUDA. ``unet`` and
``unet-gpu`` are the default until 2026-11-29, a U-Net of 2 levels of 8 channels on a
least-squares linear path, which applies faster and copies hard targets less
faithfully (docs/FIDELITY.md, "The default recipe"). ``paper-prototype`` follows the
early code of the paper's first author: a DnCNN-style 17-layer plain CNN (64
channels, batch norm, residual), Adam at 1e-3, x0.1 steps at 60% and 90% of the
budget, 70 x 70 crops; it is the baseline the benchmarks compare against.
``first-default`` is the U-Net default before the speed work made it smaller (3
levels of 16 channels); the fidelity benchmark compares every new recipe with it.
``fidelity`` is the most faithful U-Net recipe the fidelity benchmark found for a
hard neural target, at a far higher cost to train and to apply. ``filters`` trains
no network: it is the adaptive linear path alone, solved in seconds; ``refined``
adds a wider refiner after the path's second stage, the most faithful recipe on five
of the fidelity benchmark's seven targets, which applies 2-3 times slower than the
default.
"""

from __future__ import annotations

from dataclasses import replace

from onepair.fit import Augment, FitConfig, Schedule, resolve_device
from onepair.models import FilterConfig, ModelConfig, PlainConfig, Skip, UNetConfig

# the adaptive linear path (three 15 x 15 filters blended by gradient strength), solved in
# closed form, and a refiner of five 3 x 3 layers of 8 channels shared across colour
# channels, trained on top (docs/FIDELITY.md, "The default recipe"); where input and output
# channels differ (virtual staining) no refiner is built and the path is `filters`' (five
# blended filters and the second stage)
LIGHT = FilterConfig(refined_bins=3, refine_layers=5, refine_width=8, refined_stage2=False)

PRESETS: dict[str, tuple[ModelConfig, FitConfig]] = {
    # on the fidelity benchmark (2 minutes, 2-core AMD EPYC) ahead of the first default and
    # of the U-Net default on all seven targets, by 0.08-4.6 dB, and level with `refined`
    # on the staining teacher, where no refiner is built; it applies at 5.0-5.9
    # megapixels/s in float32 and 6.1-7.6 in bfloat16 there (docs/PERFORMANCE.md)
    "default": (LIGHT, FitConfig(augment=Augment.AUTO)),
    # batches of 64 crops at twice the learning rate, as the U-Net's on a GPU (below); the
    # refiner's GPU settings are not measured yet
    "default-gpu": (LIGHT, FitConfig(augment=Augment.AUTO, batch_size=64, lr=4e-3)),
    # the default until 2026-11-29: a U-Net of 2 levels of 8 channels on a least-squares
    # linear path; it applies 2-4 times faster than the default and copies hard targets less
    # faithfully (docs/FIDELITY.md)
    "unet": (UNetConfig(), FitConfig()),
    # measured on an H200: after 5 s, batches of 64 gave +0.45 dB (TV) and +0.78 dB (teacher)
    # over batches of 4; with graphed steps, lr 4e-3 +0.19-0.30 dB (TV) and +0.29-0.55 dB
    # (teacher, two examples) over 2e-3
    "unet-gpu": (UNetConfig(), FitConfig(batch_size=64, lr=4e-3)),
    # a third level at the U-Net's 8 channels (growth 1: no doubling), receptive field 27:
    # on a 2-core Xeon, ahead of the U-Net on seven hard targets after 5 minutes (one
    # seed), within 0.2 dB of it or ahead on the means of three seeds at 2 minutes, but
    # 0.9 dB behind it on MAXIM sigma 25 after 15 minutes (two seeds; docs/FIDELITY.md);
    # it applies at about 0.85 times the U-Net's speed and trains 25 % fewer steps a
    # second, so it is slower to its plateau (the denoiser teacher: 34.58 dB at 60 s
    # against the U-Net's 35.12)
    "deep": (UNetConfig(depth=3, growth=1), FitConfig()),
    # the default until the speed work (docs/PERFORMANCE.md): issue 4's "first default"
    "first-default": (UNetConfig(depth=3, width=16), FitConfig()),
    # MAXIM denoising (sigma 25) from one 256 x 256 pair, 15 min on a 2-core Xeon, two
    # seeds (docs/FIDELITY.md): 31.01 / 30.72 dB held out in one pass, level with the first
    # default (31.16 / 30.67), and 31.26 / 31.02 self-ensembled (`apply --ensemble`), the
    # only recipe at >= 31 dB with both; its 4 levels of 32 channels see 59 x 59 pixels
    "fidelity": (UNetConfig(depth=4, width=32), FitConfig(augment=Augment.AUTO, crop=96)),
    # no network: only the adaptive linear path (five 15 x 15 filters blended by gradient
    # strength, then three 11 x 11 on the input and their output), solved in closed form
    # in seconds, again on the flips and rotations the held-out blocks find the target
    # commutes with (kept if the blocks score it higher); from one 256 x 256 pair it
    # copies MAXIM denoising at 32.36 dB (sigma 25) and 34.19 dB (sigma 15) on other
    # photographs, above every U-Net fitted for 15 minutes (docs/FIDELITY.md, "The
    # adaptive linear path"); networks copy onepair's trained teachers better
    "filters": (FilterConfig(), FitConfig(augment=Augment.AUTO)),
    "refined": (FilterConfig(refine_layers=3), FitConfig(augment=Augment.AUTO)),
    # the default's recipe under its own name: five 3 x 3 layers of 8 channels in the place
    # of the path's second stage, on a first stage of three blended filters (five until
    # 2026-11-29: the same fidelity within the seeds' spread, applied 1.0-1.7 times slower;
    # docs/FIDELITY.md, "The default since 2026-11-29"); without a refiner, `filters`' path
    "refined-light": (LIGHT, FitConfig(augment=Augment.AUTO)),
    "paper-prototype": (
        PlainConfig(
            receptive_field=35, width=64, kernel_size=3, batchnorm=True, skip=Skip.IDENTITY
        ),
        FitConfig(lr=1e-3, schedule=Schedule.MULTISTEP, crop=70, batch_size=16, warmup=0.0),
    ),
}


def preset_for(name: str, device: str, saved: dict | None = None) -> str:
    """``auto`` -> ``default-gpu`` where ``device`` resolves to CUDA, else ``default``;
    any other name as given. ``saved``, the fit settings of an interrupted fit being
    resumed, decides instead when they are one of the two's: a fit resumes with the
    batch size it started with, on any device."""
    if name != "auto":
        return name
    if saved is not None:
        for known in ("default", "default-gpu"):
            if PRESETS[known][1].batch_size == saved.get("batch_size"):
                return known
    return "default-gpu" if resolve_device(device).type == "cuda" else "default"


def preset(
    name: str, in_channels: int, out_channels: int, scale: int
) -> tuple[ModelConfig, FitConfig]:
    """The recipe ``name`` adapted to a pair: an identity skip becomes none when
    channels or size change."""
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r}; known: {', '.join(PRESETS)} (and auto, for onepair fit)"
        )
    model, fit = PRESETS[name]
    if getattr(model, "skip", None) is Skip.IDENTITY and (
        in_channels != out_channels or scale != 1
    ):
        model = replace(model, skip=Skip.NONE)
    return model, fit
