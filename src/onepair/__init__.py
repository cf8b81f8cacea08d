"""onepair: imitate a black-box image-to-image model from a single input/output example.

Implements and extends N. Spingarn-Eliezer and T. Michaeli, "Imitating the
Functionality of Image-to-Image Models Using a Single Example" (arXiv
2406.00828): an imitating network trained with an L2 loss on crops of one pair,
applied to new images, and measured against the real model.

>>> import onepair
>>> target = onepair.load_target("gaussian-blur:sigma=2")          # doctest: +SKIP
>>> x = onepair.sample("astronaut", 256)                            # doctest: +SKIP
>>> imitator = onepair.fit(onepair.Pair.of(x, target(x)))          # doctest: +SKIP
>>> onepair.evaluate(imitator, target, ["builtin:coffee"]).mean("psnr")  # doctest: +SKIP
"""

from onepair.evaluate import Evaluation, evaluate
from onepair.fit import FitConfig, fit
from onepair.images import load_image, save_image
from onepair.imitator import Imitator
from onepair.metrics import psnr, ssim
from onepair.models import PlainConfig, UNetConfig
from onepair.pairs import Pair
from onepair.presets import PRESETS, preset
from onepair.samples import sample
from onepair.targets import Target, load_target

__all__ = [
    "PRESETS",
    "Evaluation",
    "FitConfig",
    "Imitator",
    "Pair",
    "PlainConfig",
    "Target",
    "UNetConfig",
    "evaluate",
    "fit",
    "load_image",
    "load_target",
    "preset",
    "psnr",
    "sample",
    "save_image",
    "ssim",
]
