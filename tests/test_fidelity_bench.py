"""benchmarks/fidelity.py: recipes, the query cache, and one tiny end-to-end run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fidelity  # noqa: E402


def test_recipe_changes_fields_of_the_imitator_and_the_fit() -> None:
    model, config = fidelity.recipe("first-default:width=24,augment=auto,lr=0.001", 3, 3, 1)
    assert (model.depth, model.width, config.augment.value, config.lr) == (3, 24, "auto", 1e-3)
    model, _ = fidelity.recipe("unet", 3, 3, 1)
    assert (model.depth, model.width) == (2, 8)
    model, _ = fidelity.recipe("default:linear_bins=2", 3, 3, 1)
    assert (model.linear_bins, model.refine_layers) == (2, 5)
    with pytest.raises(ValueError, match="'colour' is no field of UNetConfig"):
        fidelity.recipe("unet:colour=red", 3, 3, 1)
    with pytest.raises(ValueError, match="unknown preset 'best'"):
        fidelity.recipe("best", 3, 3, 1)


def test_tiny_run_records_every_row_and_queries_the_target_once(tmp_path, monkeypatch):
    args = ["--targets", "gaussian-blur:sigma=2", "--budgets", "1", "-o", str(tmp_path)]
    args += ["--recipes", "unet", "unet:augment=all", "--cache", str(tmp_path / "cache")]
    record = fidelity.main([*args, "--seeds", "0"])
    rows = record["rows"]
    assert [r["recipe"] for r in rows] == ["unet", "unet:augment=all"]
    for r in rows:  # a linear target: the linear path alone copies it far above the floor
        assert r["psnr"] > r["floor_psnr"] + 20
        assert set(r["per_image_psnr"]) == {"coffee", "chelsea", "rocket", "camera"}
    assert rows[0]["psnr_ens"] is None and rows[1]["psnr_ens"] > rows[1]["floor_psnr"] + 20
    assert {(r["precision"], r["psnr_float32"] == r["psnr"]) for r in rows} == {("float32", True)}
    assert json.loads((tmp_path / "fidelity.json").read_text())["rows"] == json.loads(
        json.dumps(rows)
    )
    # resumed with a second seed: only its rows run, from the cached queries
    monkeypatch.setattr(fidelity, "load_target", lambda spec: pytest.fail("queried again"))
    again = fidelity.main([*args, "--seeds", "0", "1", "--resume"])
    assert [(r["recipe"], r["seed"]) for r in again["rows"]][2:] == [
        ("unet", 1),
        ("unet:augment=all", 1),
    ]
    assert [s["seeds"] for s in again["summary"]] == [2, 2] and not again["skipped"]


def test_where_apply_computes_in_bfloat16_rows_keep_the_float32_psnr_beside(tmp_path, monkeypatch):
    from onepair import cpu

    monkeypatch.setattr(cpu, "bfloat16_units", lambda: True)  # as on a CPU with AMX
    asked: list[str] = []
    real_score = fidelity.score

    def score(imitator, held, ensemble, precision="auto"):
        asked.append(precision)
        return real_score(imitator, held, ensemble, precision)

    monkeypatch.setattr(fidelity, "score", score)
    args = ["--targets", "gaussian-blur:sigma=2", "--budgets", "1", "--seeds", "0"]
    args += ["--recipes", "unet", "--cache", str(tmp_path / "cache"), "-o", str(tmp_path)]
    (row,) = fidelity.main(args)["rows"]
    assert row["precision"] == "bfloat16" and asked == ["auto", "float32"]
    assert row["psnr_float32"] > row["floor_psnr"] + 20


def test_score_in_bfloat16_is_close_to_float32_and_not_equal(monkeypatch, photo):
    import torch

    from onepair.imitator import Imitator
    from onepair.models import UNetConfig, build

    torch.manual_seed(0)
    network = build(UNetConfig(), 3, 3).eval()
    torch.nn.init.normal_(network.head[0].weight, std=0.3)  # a body with work to do
    held = [("photo", photo, np.clip(photo * 0.9 + 0.05, 0, 1))]
    imitator = Imitator(network)
    exact = fidelity.score(imitator, held, False, "float32")["psnr"]
    halved = fidelity.score(imitator, held, False, "bfloat16")["psnr"]
    assert halved != exact and abs(halved - exact) < 0.1


def test_auto_recipe_records_the_choice_and_every_candidates_estimate(tmp_path) -> None:
    from onepair.auto import CANDIDATES

    args = ["--targets", "gaussian-blur:sigma=2", "--budgets", "2", "--seeds", "0"]
    args += ["--sizes", "128", "--held-out-size", "96"]  # small: two path solves and an ensemble
    args += ["--cache", str(tmp_path / "cache"), "-o", str(tmp_path)]
    record = fidelity.main([*args, "--recipes", "auto"])
    (row,) = record["rows"]
    assert set(row["auto"]["candidates"]) == set(CANDIDATES)
    assert row["auto"]["chosen"] in CANDIDATES
    assert row["val_psnr"] == row["auto"]["estimate_psnr"]
    assert row["psnr"] > row["floor_psnr"] + 20


def test_a_second_example_is_fitted_with_the_first_and_recorded_apart(tmp_path, monkeypatch):
    from onepair.samples import sample
    from onepair.targets import load_target

    spec = "gaussian-blur:sigma=2"
    args = ["--targets", spec, "--budgets", "1", "--seeds", "0", "--recipes", "unet"]
    args += ["--cache", str(tmp_path / "cache"), "-o", str(tmp_path)]
    fitted: list[list] = []
    real_fit = fidelity.fit
    monkeypatch.setattr(
        fidelity, "fit", lambda p, *a, **k: fitted.append(p) or real_fit(p, *a, **k)
    )
    fidelity.main(args)
    record = fidelity.main([*args, "--examples", "2", "--resume"])
    assert [len(pairs) for pairs in fitted] == [1, 2]  # the one-example row was kept
    first, second = fitted[1]
    assert np.array_equal(first.input, fitted[0][0].input)
    assert np.array_equal(second.input, sample("motorcycle", 256))  # a blur adds no noise
    assert np.allclose(second.output, load_target(spec)(second.input), atol=1e-6)
    assert [(r["examples"], r["psnr"] > r["floor_psnr"] + 20) for r in record["rows"]] == [
        (1, True),
        (2, True),
    ]
    assert [s["examples"] for s in record["summary"]] == [1, 2]
    # the microscopy targets have one example image: refused before any query
    with pytest.raises(ValueError, match="--examples 2: 'ihc' targets have 1 example image"):
        fidelity.extra_pairs("hematoxylin|teacher-stain", "ihc", 256, 2, tmp_path)
    assert fidelity.extra_pairs("hematoxylin|teacher-stain", "ihc", 256, 1, tmp_path) == []


def test_cross_check_rows_hold_the_cross_region_estimate(tmp_path):
    args = ["--targets", "gaussian-blur:sigma=2", "--budgets", "1", "--seeds", "0"]
    args += ["--recipes", "unet", "--cache", str(tmp_path / "cache"), "-o", str(tmp_path)]
    record = fidelity.main([*args, "--cross-check", "0.5"])
    (row,) = record["rows"]
    assert len(row["cross_folds"]) == 4
    assert min(row["cross_folds"]) <= row["cross_psnr"] <= max(row["cross_folds"])
    assert row["cross_psnr"] > row["floor_psnr"] + 20  # the linear path carries over
    assert record["summary"][0]["cross_psnr"] == row["cross_psnr"]
    (plain,) = fidelity.main([*args, "-o", str(tmp_path / "plain")])["rows"]
    assert plain["cross_psnr"] is None and plain["cross_folds"] is None
