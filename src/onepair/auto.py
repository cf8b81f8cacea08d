"""``onepair fit --auto``: choose the imitator on the example's own held-out blocks.

No test data is needed. Each candidate imitator is fitted for an equal share
of a screening part of the budget; the one with the best PSNR on the held-out
blocks then trains on from its trial's weights for the rest (a warm start: its
screening time is not lost, and its linear path is not solved again). Its
held-out PSNR is the estimate of held-out fidelity it reports, and
``benchmarks/fidelity.py`` measures that estimate's error against other images
(docs/FIDELITY.md).

The candidates are the default's kind: the adaptive linear path with the default's
light refiner, and ``--preset refined``'s larger one, which copies four of the
fidelity benchmark's seven targets better and applies 2-3 times slower; both train
with the caller's fit settings (the default's). Until 2026-11-29 they were the two
U-Nets, which the default copies 1-4 dB better on six of the seven. Half the
budget goes to screening, because a short trial favours the smaller network
(docs/FIDELITY.md, "onepair fit --auto").
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from onepair.fit import FitConfig, fit
from onepair.imitator import Imitator
from onepair.models import ModelConfig
from onepair.pairs import Pair
from onepair.presets import PRESETS

# name: imitator; the fit settings are the caller's (augment included)
CANDIDATES: dict[str, ModelConfig] = {
    "refined-light": PRESETS["refined-light"][0],  # the default's: 5 layers of 8
    "refined": PRESETS["refined"][0],  # 3 layers of 32 after the path's two stages
}


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
