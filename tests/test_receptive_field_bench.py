"""benchmarks/receptive_field.py: the pair-only width estimate and the ERF, end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import receptive_field  # noqa: E402


def test_a_gaussian_blur_needs_a_wide_filter_and_the_blocks_see_it(tmp_path) -> None:
    args = ["--targets", "gaussian-blur:sigma=2", "--kernels", "3", "9", "17"]
    args += ["--size", "64", "--held-out-size", "64", "--erf-size", "32", "--erf-count", "2"]
    record = receptive_field.main([*args, "--cache", str(tmp_path / "cache"), "-o", str(tmp_path)])
    (row,) = record["rows"]
    held = {r["kernel"]: r["held_psnr"] for r in row["sweep"]}
    blocks = {r["kernel"]: r["blocks_psnr"] for r in row["sweep"]}
    # a 3 x 3 filter cannot hold a blur of sigma 2; 17 x 17 holds nearly all of it
    assert held[9] > held[3] + 5 and held[17] > 45
    assert blocks[9] > blocks[3] + 5
    assert row["blocks_pick"] in (9, 17) and row["linear_pick"] > 40
    # a 2-D Gaussian of sigma 2 holds half its mass within 2.35 px, 95 % within 4.9 px
    assert 1.0 < row["erf_r50"] < row["erf_r95"] < 7.0
    assert record["imitators"]["unet"] == 11 and record["imitators"]["deep"] == 27
    # the default's refiner (five 3 x 3 layers) sees the path's 29 x 29 (15 x 15 filters,
    # gradients and their window)
    assert record["imitators"]["default"] == 29 + 2 * 5
    saved = json.loads((tmp_path / "receptive_field.json").read_text())
    assert saved["rows"][0]["sweep"] == json.loads(json.dumps(row["sweep"]))


def test_even_kernel_sizes_are_refused(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        receptive_field.main(["--kernels", "3", "8", "-o", str(tmp_path)])
    assert "--kernels must be odd sizes >= 1, not [3, 8]" in capsys.readouterr().err
