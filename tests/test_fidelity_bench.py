"""benchmarks/fidelity.py: recipes, the query cache, and one tiny end-to-end run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fidelity  # noqa: E402


def test_recipe_changes_fields_of_the_imitator_and_the_fit() -> None:
    model, config = fidelity.recipe("first-default:width=24,augment=auto,lr=0.001", 3, 3, 1)
    assert (model.depth, model.width, config.augment.value, config.lr) == (3, 24, "auto", 1e-3)
    model, _ = fidelity.recipe("default", 3, 3, 1)
    assert (model.depth, model.width) == (2, 8)
    with pytest.raises(ValueError, match="'colour' is no field of UNetConfig"):
        fidelity.recipe("default:colour=red", 3, 3, 1)
    with pytest.raises(ValueError, match="unknown preset 'best'"):
        fidelity.recipe("best", 3, 3, 1)


def test_tiny_run_records_every_row_and_queries_the_target_once(tmp_path, monkeypatch):
    args = ["--targets", "gaussian-blur:sigma=2", "--budgets", "1", "-o", str(tmp_path)]
    args += ["--recipes", "default", "default:augment=all", "--cache", str(tmp_path / "cache")]
    record = fidelity.main([*args, "--seeds", "0"])
    rows = record["rows"]
    assert [r["recipe"] for r in rows] == ["default", "default:augment=all"]
    for r in rows:  # a linear target: the linear path alone copies it far above the floor
        assert r["psnr"] > r["floor_psnr"] + 20
        assert set(r["per_image_psnr"]) == {"coffee", "chelsea", "rocket", "camera"}
    assert rows[0]["psnr_ens"] is None and rows[1]["psnr_ens"] > rows[1]["floor_psnr"] + 20
    assert json.loads((tmp_path / "fidelity.json").read_text())["rows"] == json.loads(
        json.dumps(rows)
    )
    # resumed with a second seed: only its rows run, from the cached queries
    monkeypatch.setattr(fidelity, "load_target", lambda spec: pytest.fail("queried again"))
    again = fidelity.main([*args, "--seeds", "0", "1", "--resume"])
    assert [(r["recipe"], r["seed"]) for r in again["rows"]][2:] == [
        ("default", 1),
        ("default:augment=all", 1),
    ]
    assert [s["seeds"] for s in again["summary"]] == [2, 2] and not again["skipped"]


def test_auto_recipe_records_the_choice_and_every_candidates_estimate(tmp_path) -> None:
    from onepair.auto import CANDIDATES

    args = ["--targets", "gaussian-blur:sigma=2", "--budgets", "2", "--seeds", "0"]
    args += ["--cache", str(tmp_path / "cache"), "-o", str(tmp_path)]
    record = fidelity.main([*args, "--recipes", "auto"])
    (row,) = record["rows"]
    assert set(row["auto"]["candidates"]) == set(CANDIDATES)
    assert row["auto"]["chosen"] in CANDIDATES
    assert row["val_psnr"] == row["auto"]["estimate_psnr"]
    assert row["psnr"] > row["floor_psnr"] + 20
