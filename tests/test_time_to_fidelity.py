"""benchmarks/time_to_fidelity.py: how the times are read off the measured fits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import time_to_fidelity  # noqa: E402


def fits(*pairs: tuple[float, float]) -> list[dict]:
    return [{"budget_s": b, "psnr": p} for b, p in pairs]


def test_goal_variants_and_no_prototype() -> None:
    row = {
        "target": "t",
        "recipe": "default",
        "default_fits": fits((2, 38.0), (5, 39.6), (45, 40.0)),
        "variants": {"default:batch_size=32": fits((2, 39.7), (5, 40.1)), "slow": fits((2, 30))},
    }
    derived = time_to_fidelity.derive(row, long=45, within=0.5)
    assert derived["goal_psnr"] == 39.5
    assert derived["default_s"] == 5
    assert derived["variants_s"] == {"default:batch_size=32": 2, "slow": None}
    assert "prototype_s" not in derived and "ratio" not in derived


def test_times_are_the_fits_wall_seconds_where_recorded() -> None:
    """A budget shorter than the linear solve still takes the solve's time: the time to
    fidelity is the fit's wall time, its budget kept beside it."""
    walls = iter([5.2, 5.4, 10.6, 600.3, 5.1, 5.3])
    row = {
        "target": "t",
        "recipe": "default",
        "default_fits": [
            {**f, "wall_s": next(walls)} for f in fits((2, 38.0), (5, 39.6), (10, 39.9), (600, 40))
        ],
        "variants": {"v": [{**f, "wall_s": next(walls)} for f in fits((2, 39.7), (5, 40.1))]},
        "prototype_curve": [{"seconds": 100, "psnr": 39.0}, {"seconds": 270, "psnr": 39.55}],
        "prototype_final_psnr": 39.8,
    }
    derived = time_to_fidelity.derive(row, long=600, within=0.5)
    assert derived["default_s"] == 5.4 and derived["default_budget_s"] == 5
    assert derived["default_text"] == "5.4 s (budget 5 s)"
    assert derived["variants_s"] == {"v": 5.1}
    assert derived["ratio"] == pytest.approx(270 / 5.4)
    assert derived["p_proto"] == 39.8 and derived["default_to_p_proto_s"] == 10.6
    row["default_fits"] = row["default_fits"][:1] + row["default_fits"][3:]
    missed = time_to_fidelity.derive(row, long=600, within=0.5)
    assert missed["default_s"] is None and missed["default_text"] == "> 5.2 s (budget 2 s)"


def test_prototype_ratio_and_its_lower_bound() -> None:
    row = {
        "target": "t",
        "recipe": "default",
        "default_fits": fits((2, 38.0), (5, 39.6), (600, 40.0)),
        "prototype_curve": [{"seconds": 100, "psnr": 39.0}, {"seconds": 300, "psnr": 39.55}],
        "prototype_final_psnr": 39.8,
    }
    derived = time_to_fidelity.derive(row, long=600, within=0.5)
    assert derived["prototype_s"] == 300 and derived["ratio"] == 60
    assert derived["ratio_text"] == "60"
    row["prototype_curve"] = [{"seconds": 100, "psnr": 39.0}]
    row["prototype_final_psnr"] = 39.2
    never = time_to_fidelity.derive(row, long=600, within=0.5)
    assert never["prototype_s"] is None and never["ratio_text"] == "> 120"


def test_a_target_that_cannot_load_stops_the_run_before_any_fit(tmp_path, monkeypatch) -> None:
    fitted: list[str] = []
    monkeypatch.setattr(time_to_fidelity, "run_fit", lambda *a, **k: fitted.append(a[1]))
    args = ["--targets", "gaussian-blur:sigma=1", "no-such-target", "--size", "64"]
    with pytest.raises(ValueError, match="no-such-target"):
        time_to_fidelity.main([*args, "--no-prototype", "-o", str(tmp_path)])
    assert fitted == [] and not (tmp_path / "time_to_fidelity.json").exists()


def test_the_record_holds_each_target_as_soon_as_it_ends(tmp_path, monkeypatch) -> None:
    """An interrupted run keeps the targets it finished."""
    measured = iter([{"target": "a", "recipe": "default", "default_fits": fits((2, 30), (9, 31))}])

    def measure(spec, pair, held, args):
        row = next(measured, None)
        if row is None:
            raise KeyboardInterrupt
        return row

    monkeypatch.setattr(time_to_fidelity, "measure", measure)
    monkeypatch.setattr(time_to_fidelity, "warm_up", lambda: None)
    targets = ["gaussian-blur:sigma=1", "gaussian-blur:sigma=2"]
    with pytest.raises(KeyboardInterrupt):
        time_to_fidelity.main(["--targets", *targets, "--size", "64", "-o", str(tmp_path)])
    record = json.loads((tmp_path / "time_to_fidelity.json").read_text())
    assert [r["target"] for r in record["rows"]] == ["a"]
    assert record["rows"][0]["goal_psnr"] == 30.5
