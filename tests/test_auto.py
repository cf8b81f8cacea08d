"""auto.py and `onepair fit --auto`: the choice on the held-out blocks, and its estimate."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import TINY_FIT
from onepair.auto import auto_fit
from onepair.models import PlainConfig, UNetConfig
from onepair.pairs import Pair
from onepair.presets import PRESETS
from onepair.targets import load_target
from test_cli import invoke


def test_auto_fits_the_candidate_held_out_blocks_prefer_and_reports_its_estimate(photo, tmp_path):
    pair = Pair.of(photo, load_target("noise:sigma=25|median")(photo))
    candidates = {  # one that can copy a denoiser, one that cannot: a single feature map
        "unet": UNetConfig(depth=2, width=8, linear_kernel=7),
        "one-map": PlainConfig(receptive_field=3, width=1, skip="none"),
    }
    config = replace(TINY_FIT, seconds=8.0, steps=10**9)
    imitator = auto_fit(pair, config, tmp_path / "run", candidates=candidates, show_progress=False)
    auto = imitator.metrics["auto"]
    assert set(auto["candidates"]) == set(candidates)
    assert auto["chosen"] == max(auto["candidates"], key=auto["candidates"].get) == "unet"
    assert auto["estimate_psnr"] == imitator.metrics["val_psnr"]
    # the chosen candidate trains on from its trial's weights
    start = imitator.history[0]
    assert start["step"] == 0 and start["val_psnr"] == pytest.approx(auto["candidates"]["unet"])
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["auto"] == json.loads(json.dumps(auto))
    with pytest.raises(ValueError, match="needs a time budget"):
        auto_fit(pair, TINY_FIT)
    with pytest.raises(ValueError, match="needs held-out blocks"):
        auto_fit(pair, replace(config, holdout=0.0, seconds=2.0), candidates=candidates)


def test_cli_auto_refuses_a_chosen_architecture(tmp_path):
    args = ["fit", "builtin:astronaut", "builtin:astronaut", "-o", tmp_path / "run", "--auto"]
    refused = invoke(*args, "--width", "16", "--seconds", "5")
    assert refused.exit_code != 0 and "--auto chooses the imitator itself; drop --width" in (
        refused.output
    )
    refused = invoke(*args)
    assert refused.exit_code != 0 and "needs a time budget (--seconds)" in refused.output


def test_cli_auto_prints_its_choice_and_an_upper_estimate(tmp_path):
    pair = tmp_path / "pair"
    made = invoke("query", "noise:sigma=25|median", "builtin:astronaut", "--size", "96", "-o", pair)
    assert made.exit_code == 0, made.output
    run = tmp_path / "run"
    args = [pair / "input.png", pair / "output.png", "-o", run, "--seconds", "4", "--auto"]
    fitted = invoke("fit", *args, "--device", "cpu", "--quiet")
    assert fitted.exit_code == 0, fitted.output
    auto = json.loads((run / "metrics.json").read_text())["auto"]
    assert f"--auto chose {auto['chosen']} on the held-out blocks" in fitted.output
    said = f"new images like the example: {auto['estimate_psnr']:.2f} dB (an upper estimate"
    assert said in " ".join(fitted.output.split())
    # the candidates are the default's kind, trained with the default's fit settings
    assert auto["chosen"] in ("refined-light", "refined")
    assert json.loads((run / "config.json").read_text())["model"]["architecture"] == "filter"
    settings = json.loads((run / "config.json").read_text())["fit"]
    assert settings["augment"] == PRESETS["default"][1].augment.value
