"""benchmarks/erf_zoo.py: the zoo-table parser and one tiny end-to-end survey.

The end-to-end run measures three cheap targets whose ERF radii are known:
identity (all change stays at the changed pixel: 0), a 3x3 median (within the
3x3 window: at most sqrt(2)) and a Gaussian blur of sigma 2 (95% of a 2-D
Gaussian's mass lies within sigma * sqrt(-2 ln 0.05) = 4.9 px; on the pixel
grid 5.0).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import erf_zoo  # noqa: E402

TABLE = """# The zoo

Some words about it.

| target | what it is | images | PSNR dB | SSIM | floor dB | val dB | steps |
|---|---|---|---:|---:|---:|---:|---:|
| `identity` | returns its input | photo | 90.00 ± 4.01 | 1.000 | inf | 82.73 | 902 |
| `median` | median filter | photo | 40.00 ± 1.03 | 0.976 | 30.00 | 32.02 | 1390 |
| `gaussian-blur:sigma=2` | Gaussian blur | photo | 35.00 ± 2.00 | 1.000 | 25.00 | 56.29 | 901 |

A closing paragraph.
"""


def test_parse_zoo_reads_specs_psnr_and_floors() -> None:
    text = TABLE.replace(
        "| `median` |",
        "| `noise:sigma=25\\|tv-denoise` | TV | photo | 39.37 ± 1.19 | 0.9 | 21.10 | 1 | 2 |\n"
        "| `grayscale` | RGB -> gray | ihc | 95.68 ± 2.90 | 1.000 | - | 84.22 | 1352 |\n"
        "| `median` |",
    )
    rows = erf_zoo.parse_zoo(text)
    assert [r.spec for r in rows] == [
        "identity",
        "noise:sigma=25|tv-denoise",
        "grayscale",
        "median",
        "gaussian-blur:sigma=2",
    ]
    tv, gray = rows[1], rows[2]
    assert (tv.psnr, tv.psnr_std, tv.floor, tv.images) == (39.37, 1.19, 21.10, "photo")
    assert gray.floor is None and gray.images == "ihc"
    assert rows[0].floor == math.inf
    assert erf_zoo.model_text(tv.spec) == "tv-denoise"


def test_parse_zoo_refuses_what_is_not_a_zoo_table() -> None:
    with pytest.raises(ValueError, match="no zoo table"):
        erf_zoo.parse_zoo("| a | b |\n|---|---|\n| 1 | 2 |\n")
    with pytest.raises(ValueError, match="mean ± std"):
        erf_zoo.parse_zoo(TABLE.replace("40.00 ± 1.03", "40.00"))


def test_survey_end_to_end_orders_radii_and_writes_figures(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ZOO.md").write_text(TABLE)
    specs = ["identity", "median", "gaussian-blur:sigma=2"]
    args = ["--zoo", str(docs / "ZOO.md"), "--size", "32", "--count", "2", "--only", *specs]
    args += ["-o", str(tmp_path / "out"), "--figures", str(docs / "erf")]
    erf_zoo.main([*args, "--doc", str(tmp_path / "section.md")])

    record = json.loads((tmp_path / "out" / "erf_zoo.json").read_text())
    radius = {r["target"]: r["radius"] for r in record["rows"]}
    assert radius["identity"] == 0.0
    assert 0.0 < radius["median"] <= math.sqrt(2) + 1e-9
    assert radius["gaussian-blur:sigma=2"] == pytest.approx(5.0, abs=0.5)
    rows = {r["target"]: r for r in record["rows"]}
    assert rows["median"]["psnr_minus_floor"] == pytest.approx(10.0)
    assert rows["identity"]["psnr_minus_floor"] is None  # infinite floor: no gain
    assert all(r["queries"] == 4 for r in record["rows"])  # 2 probes x (x, x')
    # PSNR falls as the radius grows: a perfect negative rank correlation
    assert record["correlation"]["psnr"]["rho"] == pytest.approx(-1.0)
    assert record["correlation"]["gain"] == {"rho": None, "p": None, "n": 2}

    scatter = docs / "erf" / "erf_vs_psnr.png"
    assert Image.open(scatter).format == "PNG"
    for row in record["rows"]:
        heatmap = docs / "erf" / row["heatmap"]
        assert Image.open(heatmap).width <= erf_zoo.HEATMAP_WIDTH
        assert heatmap.stat().st_size < 100_000
    section = (tmp_path / "section.md").read_text()
    assert "](erf/erf_vs_psnr.png)" in section and "](erf/median.png)" in section

    # --resume measures nothing again: the record comes back unchanged
    again = erf_zoo.main([*args, "--resume"])
    assert [r["radius"] for r in again["rows"]] == [r["radius"] for r in record["rows"]]
    assert [r["seconds"] for r in again["rows"]] == [r["seconds"] for r in record["rows"]]
