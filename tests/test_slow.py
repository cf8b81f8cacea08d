"""Long checks for `make test-slow`: the demo's fidelity at its real budget."""

from __future__ import annotations

import pytest

from onepair.demo import TARGETS, run_demo

LINEAR = {"gaussian-blur:sigma=2", "unsharp:radius=2,amount=1"}


@pytest.mark.slow
def test_demo_reaches_the_fidelity_the_readme_promises(tmp_path):
    """Held-out PSNR >= 36 dB on the linear targets, >= 33 dB on the nonlinear ones."""
    rows = run_demo(tmp_path, TARGETS, seconds=40.0, show_progress=False)
    for row in rows:
        bound = 36.0 if row["target"] in LINEAR else 33.0
        assert row["psnr"] >= bound, row
        assert row["psnr"] > row["floor_psnr"] + 5.0, row
