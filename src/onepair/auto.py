"""``onepair fit --auto``: choose the imitator on the example's own held-out blocks.

No test data is needed. Each candidate imitator is fitted for an equal share
of a screening part of the budget; the one with the best PSNR on the held-out
blocks then trains on from its trial's weights for the rest (a warm start: its
screening time is not lost). Its held-out PSNR is the estimate of held-out
fidelity it reports, and ``benchmarks/fidelity.py`` measures that estimate's
error against other images (docs/FIDELITY.md).

Two candidates and half the budget for screening, because a short trial favours
the small network: after 12 s of a 2-minute budget the 2 x 8 U-Net led on the
virtual-staining teacher, which the 3 x 16 copies 4 dB better in 2 minutes; after
30 s the blocks prefer the 3 x 16 there (docs/FIDELITY.md, "onepair fit --auto").
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from onepair.fit import FitConfig, fit
from onepair.imitator import Imitator
from onepair.models import ModelConfig, UNetConfig
from onepair.pairs import Pair

# name: imitator; the fit settings are the caller's (augment included)
CANDIDATES: dict[str, ModelConfig] = {
    "unet-2x8": UNetConfig(),  # the default until 2026-11-29: fast to train and to apply
    "unet-3x16": UNetConfig(depth=3, width=16),  # the first default: a wider view
}
# the candidates are U-Nets: in the default's place they train with the U-Net's settings
_FIT_PRESETS = {"default": "unet", "default-gpu": "unet-gpu"}


def fit_preset(name: str) -> str:
    """The preset whose fit settings the candidates train with, for the preset ``name``
    (``default`` or ``default-gpu`` once ``auto`` is resolved): the U-Net's in the
    default's place; any other preset as given."""
    return _FIT_PRESETS.get(name, name)


def auto_fit(
    pair: Pair | list[Pair],
    config: FitConfig,
    out_dir: str | Path | None = None,
    screen: float = 0.5,
    candidates: dict[str, ModelConfig] | None = None,
    show_progress: bool = True,
) -> Imitator:
    """Fit the candidate the held-out blocks prefer, within ``config.seconds`` in all.

    ``screen`` is the part of the budget shared among the candidates' trial fits.
    The result's metrics hold ``auto``: every candidate's held-out PSNR, the choice,
    and ``estimate_psnr``, the expected PSNR against the target on new images whose
    content is like the example's (the held-out blocks' PSNR; an upper estimate for
    other content, which can be harder to copy).
    """
    if config.seconds is None:
        raise ValueError("fit --auto needs a time budget (--seconds): it shares it out")
    if not 0.0 < screen < 1.0:
        raise ValueError(f"screen is {screen}; expected a fraction in (0, 1)")
    candidates = dict(candidates or CANDIDATES)
    if not candidates:
        raise ValueError("fit --auto got no candidate imitators")
    start = time.perf_counter()
    share = config.seconds * screen / len(candidates)
    trials: dict[str, float | None] = {}
    weights = {}
    for name, model in candidates.items():
        trial = fit(pair, model, replace(config, seconds=share), show_progress=show_progress)
        trials[name] = trial.metrics["val_psnr"]
        weights[name] = trial.network.state_dict()
    scored = {k: v for k, v in trials.items() if v is not None}
    if not scored:
        raise ValueError("fit --auto needs held-out blocks to choose on (holdout > 0)")
    chosen = max(scored, key=lambda k: scored[k])
    left = max(config.seconds - (time.perf_counter() - start), share)
    final = fit(
        pair,
        candidates[chosen],
        replace(config, seconds=left),
        out_dir=out_dir,
        show_progress=show_progress,
        init=weights[chosen],
    )
    final.metrics["auto"] = {
        "candidates": trials,
        "chosen": chosen,
        "screen_seconds_each": round(share, 3),
        "estimate_psnr": final.metrics["val_psnr"],
    }
    if out_dir is not None:
        final.save(out_dir)
    return final
