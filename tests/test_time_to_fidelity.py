"""benchmarks/time_to_fidelity.py: how the times are read off the measured fits."""

from __future__ import annotations

import sys
from pathlib import Path

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
