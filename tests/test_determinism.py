"""determinism.py: a target asked twice on one input; noisy, jittery and exact targets."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from onepair.determinism import check_determinism
from onepair.targets import load_target


def fresh_noise(sigma: float, seed: int = 0):
    """A target that adds new Gaussian noise on every call (as a sampling model would)."""
    rng = np.random.default_rng(seed)

    def target(image: np.ndarray) -> np.ndarray:
        return (image + rng.normal(0.0, sigma, image.shape)).astype(np.float32)

    return target


@pytest.fixture
def grey() -> np.ndarray:
    return np.full((64, 48, 3), 0.5, np.float32)


def test_fresh_noise_is_reported_with_the_psnr_between_answers(grey):
    found = check_determinism(fresh_noise(0.02), grey)
    assert not found.deterministic
    # two answers differ by noise of variance 2 sigma^2: PSNR = 10 log10(1 / (2 * 0.02^2))
    assert found.psnr == pytest.approx(10 * math.log10(1 / (2 * 0.02**2)), abs=0.3)
    assert 0.05 < found.max_abs_diff < 0.2
    assert "NOT deterministic" in found.describe()
    assert f"{found.psnr + 3.0103:.2f} dB against one answer" in found.describe()
    more = check_determinism(fresh_noise(0.02), grey, repeats=5)
    assert more.repeats == 5 and more.psnr <= found.psnr + 0.3


def test_model_part_of_a_noisy_spec_is_deterministic_and_queries_are_counted(photo):
    target = load_target("noise:sigma=25|median:size=3")
    x = target.degrade(photo, seed=0)
    found = check_determinism(target, x, repeats=3)
    assert (found.deterministic, found.max_abs_diff, found.psnr) == (True, 0.0, math.inf)
    assert target.queries == 3
    check_determinism(target, x, answer=target(x))
    assert target.queries == 5  # the given answer counts as the first of two
    assert found.describe() == "deterministic: 3 answers to the same input are identical"
    assert found.to_dict() == {
        "repeats": 3,
        "deterministic": True,
        "max_abs_diff": 0.0,
        "psnr": "inf",
        "tolerance": 0.0,
    }


def test_deterministic_zoo_model(photo):
    found = check_determinism(load_target("tv-denoise:weight=0.1"), photo)
    assert found.deterministic and found.max_abs_diff == 0.0


def test_tolerance_accepts_round_off_but_not_more(grey):
    calls = iter(range(100))

    def jitter(image):
        return image + np.float32(1e-7 * next(calls))

    assert not check_determinism(jitter, grey).deterministic
    found = check_determinism(jitter, grey, tolerance=1e-6)
    assert found.deterministic and 0 < found.max_abs_diff <= 1e-6
    assert "within 1e-06" in found.describe()
    assert not check_determinism(fresh_noise(0.02), grey, tolerance=1e-6).deterministic


def test_answers_of_different_shape_and_bad_arguments(grey):
    sizes = iter([1, 2])

    def growing(image):
        return np.repeat(np.repeat(image, next(sizes), 0), 1, 1)

    found = check_determinism(growing, grey)
    assert (found.deterministic, found.max_abs_diff, found.psnr) == (False, math.inf, None)
    assert "differ in shape" in found.describe()
    assert json.dumps(found.to_dict())  # JSON-ready: no bare inf
    with pytest.raises(ValueError, match="repeats is 1; comparing answers needs at least 2"):
        check_determinism(fresh_noise(0.1), grey, repeats=1)
    with pytest.raises(ValueError, match="tolerance is -1"):
        check_determinism(fresh_noise(0.1), grey, tolerance=-1)


# ---------------------------------------------------------------- wiring into query and evaluate


NOISY_MODULE = """
import numpy as np

_rng = np.random.default_rng(0)


def noisy(image):
    return np.clip(image + _rng.normal(0.0, 0.05, image.shape), 0, 1).astype(np.float32)
"""


def test_query_command_reports_and_records_determinism(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from onepair.cli import app

    (tmp_path / "noisy_target_for_test.py").write_text(NOISY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    args = ["query", "builtin:astronaut", "--size", "40", "-o"]
    noisy = runner.invoke(
        app, [args[0], "py:noisy_target_for_test:noisy", *args[1:], tmp_path / "n"]
    )
    assert noisy.exit_code == 0, noisy.output
    assert "NOT deterministic: 2 answers" in noisy.output
    record = json.loads((tmp_path / "n" / "query.json").read_text())
    assert record["determinism"]["deterministic"] is False
    assert 20 < record["determinism"]["psnr"] < 35 and record["queries"] == 2
    exact = runner.invoke(app, [args[0], "noise:sigma=25|median:size=3", *args[1:], tmp_path / "e"])
    assert "deterministic: 2 answers to the same input are identical" in exact.output
    record = json.loads((tmp_path / "e" / "query.json").read_text())
    assert record["determinism"]["psnr"] == "inf" and record["queries"] == 2
    off = runner.invoke(
        app, ["query", "median:size=3", *args[1:], tmp_path / "o", "--no-check-determinism"]
    )
    assert off.exit_code == 0 and "deterministic" not in off.output
    record = json.loads((tmp_path / "o" / "query.json").read_text())
    assert record["determinism"] is None and record["queries"] == 1


def test_evaluate_reports_a_noisy_target(tmp_path, photo):
    from conftest import TINY_FIT, TINY_MODEL
    from onepair.evaluate import evaluate
    from onepair.fit import fit
    from onepair.pairs import Pair

    exact = load_target("median:size=3")
    config = replace(TINY_FIT, steps=5)
    imitator = fit(Pair.of(photo, exact(photo)), TINY_MODEL, config, show_progress=False)
    plain = evaluate(imitator, exact, ["builtin:coffee"])
    assert plain.deterministic is None and plain.queries == 1
    checked = evaluate(imitator, exact, ["builtin:coffee"], check_determinism=True)
    assert (checked.deterministic, checked.nondeterminism_psnr, checked.queries) == (
        True,
        math.inf,
        2,
    )
    noisy = evaluate(
        imitator, load_target(fresh_noise(0.05)), ["builtin:coffee"], check_determinism=True
    )
    assert noisy.deterministic is False
    assert noisy.nondeterminism_psnr == pytest.approx(10 * math.log10(1 / (2 * 0.05**2)), abs=0.5)
    written = json.loads(noisy.write(tmp_path)[0].read_text())["summary"]
    assert written["deterministic"] is False
    assert written["nondeterminism_psnr"] == pytest.approx(noisy.nondeterminism_psnr)
