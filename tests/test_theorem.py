"""Theorem 1: one example recovers a linear kernel, or exactly its projection on the patches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import correlate2d
from typer.testing import CliRunner

import onepair.cli_science  # noqa: F401  (registers `onepair erf` and `onepair theorem`)
from onepair.cli import app
from onepair.theorem import demonstrate, parse_size

runner = CliRunner()


def _patches(result) -> np.ndarray:
    """(n*m, kh*kw) patch matrix of the example, built independently of the module."""
    kh, kw = result.kernel.shape
    return sliding_window_view(result.input, (kh, kw)).reshape(-1, kh * kw)


def _least_norm(result) -> np.ndarray:
    """The minimum-norm least-squares kernel for the example (numpy's lstsq)."""
    output = correlate2d(result.input, result.kernel, mode="valid")
    assert output.shape == result.example  # 'valid' correlation, n x m output
    solution = np.linalg.lstsq(_patches(result), output.ravel(), rcond=None)[0]
    return solution.reshape(result.kernel.shape)


def test_spanning_example_recovers_the_kernel():
    result = demonstrate((5, 5), (16, 16), seed=0)
    assert (result.patches, result.dims, result.rank, result.spans) == (256, 25, 25, True)
    assert result.input.shape == (20, 20)
    assert result.converged and result.error < 1e-4
    np.testing.assert_allclose(result.recovered, result.kernel, atol=1e-6)
    np.testing.assert_allclose(_least_norm(result), result.kernel, atol=1e-8)


@pytest.mark.parametrize("kernel, example", [((5, 5), (3, 4)), ((7, 7), (4, 4)), ((3, 5), (2, 3))])
def test_small_example_recovers_only_the_projection(kernel, example):
    result = demonstrate(kernel, example, seed=3)
    n, m = example
    assert result.patches == n * m < result.dims and result.rank == n * m and not result.spans
    reference = _least_norm(result)
    assert np.linalg.norm(result.recovered - reference) < 1e-4 * np.linalg.norm(reference)
    assert result.projection_error < 1e-4
    assert result.error > 0.1  # the true kernel is out of reach
    # what is missed is orthogonal to every patch: the example cannot tell it apart
    missed = (result.kernel - result.recovered).ravel()
    assert np.abs(_patches(result) @ missed).max() < 1e-6 * np.linalg.norm(missed)
    assert result.loss < 1e-12


def test_results_are_seeded():
    a, b = demonstrate((3, 3), (2, 2), seed=1), demonstrate((3, 3), (2, 2), seed=1)
    np.testing.assert_array_equal(a.recovered, b.recovered)
    c = demonstrate((3, 3), (2, 2), seed=2)
    assert not np.allclose(a.kernel, c.kernel)


def test_step_limit_is_reported():
    result = demonstrate((5, 5), (5, 5), steps=10)
    assert result.steps == 10 and not result.converged and result.error > 1e-3


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"kernel": (0, 5)}, "kernel is (0, 5); expected two integers >= 1"),
        ({"example": (4,)}, "example is (4,); expected (rows, cols)"),
        ({"steps": 0}, "steps is 0; expected an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        demonstrate(**kwargs)
    assert words in str(info.value)


def test_parse_size():
    assert parse_size("5x7", "--kernel") == (5, 7) and parse_size("4", "--kernel") == (4, 4)
    for text in ("5x", "x5", "0x3", "5x5x5", "five"):
        with pytest.raises(ValueError, match=f"--kernel is '{text}'; expected ROWSxCOLS"):
            parse_size(text, "--kernel")


def test_cli_theorem(tmp_path):
    result = runner.invoke(
        app, ["theorem", "--kernel", "5x5", "--example", "3x4", "-o", str(tmp_path / "t.json")]
    )
    assert result.exit_code == 0, result.output
    assert "only the projection onto the 12-dimensional span" in result.output
    record = json.loads((tmp_path / "t.json").read_text())
    assert (record["patches"], record["dims"], record["spans"]) == (12, 25, False)
    assert record["input_size"] == [7, 8] and record["projection_error"] < 1e-4
    result = runner.invoke(app, ["theorem"])
    assert result.exit_code == 0 and "the kernel is recovered exactly" in result.output


def test_cli_theorem_bad_size():
    result = runner.invoke(app, ["theorem", "--kernel", "5x"])
    assert result.exit_code == 2
    assert "--kernel is '5x'; expected ROWSxCOLS" in result.output
