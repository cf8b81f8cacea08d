"""crosscheck.py and `onepair fit --cross-check`: fit on three quadrants, measure on the fourth."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import TINY_FIT, TINY_MODEL
from onepair import crosscheck
from onepair.crosscheck import cross_check, quadrants
from onepair.fit import fit
from onepair.pairs import Pair
from onepair.targets import load_target
from test_cli import invoke

FOLD_FIT = replace(TINY_FIT, steps=20, val_every=10, checkpoint_every=100)


def test_quadrants_cover_the_input_once():
    cover = np.zeros((7, 10), int)
    for r0, r1, c0, c1 in quadrants(7, 10):
        cover[r0:r1, c0:c1] += 1
    assert (cover == 1).all()
    assert quadrants(7, 10)[0] == (0, 3, 0, 5)


def _fold_weights(monkeypatch, pairs) -> tuple[dict, list[dict[str, torch.Tensor]]]:
    """cross_check's result and the weights each of its four folds trained."""
    trained: list[dict[str, torch.Tensor]] = []

    def recording_fit(*args, **kwargs):
        imitator = fit(*args, **kwargs)
        trained.append({k: v.clone() for k, v in imitator.network.state_dict().items()})
        return imitator

    monkeypatch.setattr(crosscheck, "fit", recording_fit)
    return cross_check(pairs, TINY_MODEL, FOLD_FIT, seconds=None), trained


@pytest.mark.parametrize("scale", [1, 2])
def test_a_fold_learns_nothing_from_its_quadrant(photo, monkeypatch, scale):
    """Examples that differ only in quadrant 0, input and output, train the same fold 0;
    fold 1, which learns from quadrant 0, trains another network."""
    x = photo.copy()
    y = np.clip(x * 0.7 + 0.2, 0, 1)
    y = np.repeat(np.repeat(y, scale, 0), scale, 1)
    r0, r1, c0, c1 = quadrants(*x.shape[:2])[0]
    x2, y2 = x.copy(), y.copy()
    x2[r0:r1, c0:c1] = 1.0 - x2[r0:r1, c0:c1]
    y2[scale * r0 : scale * r1, scale * c0 : scale * c1] = 0.5
    first, weights = _fold_weights(monkeypatch, Pair.of(x, y))
    second, changed = _fold_weights(monkeypatch, Pair.of(x2, y2))
    assert len(weights) == len(changed) == 4
    for name, value in changed[0].items():
        torch.testing.assert_close(value, weights[0][name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(changed[1][k], weights[1][k]) for k in weights[1])
    assert first["folds"][0] != second["folds"][0]  # measured against the changed truth
    assert first["folds"][1:] != second["folds"][1:]  # applied with quadrant 0 as context


def test_the_estimate_pools_the_folds_and_is_high_for_a_linear_target(photo):
    """A blur is copied by the least-squares path from any three quadrants."""
    pair = Pair.of(photo, load_target("gaussian-blur:sigma=1.5")(photo))
    result = cross_check(pair, TINY_MODEL, replace(FOLD_FIT, steps=1), seconds=None)
    assert len(result["folds"]) == 4 and result["seconds_each"] is None
    assert min(result["folds"]) <= result["psnr"] <= max(result["folds"])
    assert result["psnr"] > 40.0, result


def test_a_quadrant_unlike_the_rest_is_what_the_estimate_sees(photo):
    """A target that blurs three quadrants and leaves the fourth alone: the fold that
    never saw the fourth copies it worst, and pulls the estimate down."""
    blurred = load_target("gaussian-blur:sigma=2.0")(photo)
    r0, r1, c0, c1 = quadrants(*photo.shape[:2])[3]
    output = blurred.copy()
    output[r0:r1, c0:c1] = photo[r0:r1, c0:c1]
    result = cross_check(
        Pair.of(photo, output), TINY_MODEL, replace(FOLD_FIT, steps=1), seconds=None
    )
    folds = result["folds"]
    assert folds[3] < min(folds[:3]) - 3.0, folds


def test_bad_requests_say_what_arrived(photo):
    pair = Pair.of(photo, photo)
    with pytest.raises(ValueError, match="cross-check seconds is 0; expected a positive"):
        cross_check(pair, TINY_MODEL, FOLD_FIT, seconds=0)
    small = Pair.of(photo[:40, :40], photo[:40, :40])
    with pytest.raises(ValueError, match="a 40x40x3 example has quadrants too small"):
        cross_check(small, TINY_MODEL, FOLD_FIT, seconds=None)


def test_cli_fit_cross_check_prints_and_saves_the_estimate(tmp_path):
    pair = tmp_path / "pair"
    made = invoke("query", "noise:sigma=25|median", "builtin:astronaut", "--size", "96", "-o", pair)
    assert made.exit_code == 0, made.output
    run = tmp_path / "run"
    args = [pair / "input.png", pair / "output.png", "-o", run, "--device", "cpu", "--quiet"]
    fitted = invoke("fit", *args, "--seconds", "2", "--crop", "32", "--cross-check", "1")
    assert fitted.exit_code == 0, fitted.output
    saved = json.loads((run / "metrics.json").read_text())["cross_check"]
    assert len(saved["folds"]) == 4 and saved["seconds_each"] == 1.0
    said = " ".join(fitted.output.split())
    assert "cross-check (4 fits of 1 s on three quadrants of the example, each measured on " in (
        said
    )
    assert f"the fourth): {saved['psnr']:.2f} dB (quadrants {min(saved['folds']):.2f} to" in said


def test_cli_fit_cross_check_refuses_a_small_example_before_fitting(tmp_path):
    pair = tmp_path / "pair"
    made = invoke("query", "gaussian-blur", "builtin:astronaut", "--size", "48", "-o", pair)
    assert made.exit_code == 0, made.output
    run = tmp_path / "run"
    args = [pair / "input.png", pair / "output.png", "-o", run, "--seconds", "2"]
    refused = invoke("fit", *args, "--crop", "32", "--cross-check", "1")
    assert refused.exit_code != 0
    assert "quadrants too small" in " ".join(refused.output.split())
    assert not (run / "weights.safetensors").exists()
