"""targets/: spec parsing, the literal tables, seeded degradations, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from onepair.targets import MODELS, Target, describe, load_target


def test_spec_parameters_reach_the_model(photo):
    weak, strong = load_target("gaussian-blur:sigma=0.5"), load_target("gaussian-blur:sigma=3")
    assert np.abs(weak(photo) - photo).mean() < np.abs(strong(photo) - photo).mean()
    assert isinstance(weak, Target)


def test_gaussian_blur_is_linear(photo, rng):
    blur = load_target("gaussian-blur:sigma=2")
    other = rng.random(photo.shape).astype(np.float32)
    np.testing.assert_allclose(
        blur(0.3 * photo + 0.5 * other), 0.3 * blur(photo) + 0.5 * blur(other), atol=1e-5
    )


def test_degradation_is_seeded_and_depends_on_the_image(photo):
    target = load_target("noise:sigma=25|tv-denoise:weight=0.1")
    a, b = target.degrade(photo, seed=3), target.degrade(photo, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, target.degrade(photo, seed=4))
    noise = a - photo
    assert 0.07 < noise[(photo > 0.2) & (photo < 0.8)].std() < 0.11  # 25/255 = 0.098
    plain = load_target("tv-denoise")
    np.testing.assert_array_equal(plain.degrade(photo), photo)


def test_queries_and_pixels_are_counted(photo):
    target = load_target("median:size=3")
    target(photo)
    target(photo[:10, :10])
    assert (target.queries, target.pixels) == (2, 96 * 80 + 100)


def test_callables_are_targets(photo):
    target = load_target(lambda image: 1.0 - image)
    np.testing.assert_allclose(target(photo), 1.0 - photo)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sharpen", "unknown target 'sharpen'.*known targets: identity, gaussian-blur"),
        ("noise:sigma=25", "a degradation needs a model after it"),
        (
            "sharpen|tv-denoise",
            "unknown target 'sharpen\\|tv-denoise'.*in front with '\\|': noise, poisson",
        ),
        ("gaussian-blur:radius=2", "unknown parameter 'radius'.*accepted: sigma \\(default 2.0\\)"),
        ("gaussian-blur:sigma", "malformed parameter 'sigma'.*expected key=value"),
        ("gaussian-blur:sigma=big", "sigma='big'.*must be a number"),
        ("noise:clip=3|identity", "clip=3.*must be true or false"),
        ("", "expected a string like"),
    ],
)
def test_bad_specs_list_what_is_accepted(spec, message):
    with pytest.raises(ValueError, match=message):
        load_target(spec)


def test_describe_lists_every_name_with_defaults():
    rows = describe()
    names = [spec.split(":")[0] for _, spec, _ in rows]
    assert set(MODELS) <= set(names) and "noise" in names
    assert ("model", "gaussian-blur:sigma=2.0", MODELS["gaussian-blur"][1]) in rows
