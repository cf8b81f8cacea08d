"""dihedral.py, augment in fit.py and the self-ensemble in Imitator.apply."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import TINY_FIT, TINY_MODEL
from onepair import dihedral
from onepair.fit import FitConfig, fit
from onepair.pairs import Pair
from onepair.targets import load_target


def test_transforms_are_the_eight_distinct_symmetries_and_invert(rng):
    image = rng.random((5, 7, 2))
    seen = []
    for name in dihedral.TRANSFORMS:
        moved = dihedral.forward(image, name)
        np.testing.assert_array_equal(dihedral.inverse(moved, name), image)
        assert not any(np.array_equal(moved, other) for other in seen)
        seen.append(moved)
    np.testing.assert_array_equal(dihedral.forward(image, "rot90"), np.rot90(image))
    np.testing.assert_array_equal(dihedral.forward(image, "rot270"), np.rot90(image, 3))
    np.testing.assert_array_equal(dihedral.forward(image, "rot180"), np.rot90(image, 2))
    with pytest.raises(ValueError, match="unknown transform 'spin'"):
        dihedral.forward(image, "spin")


def test_ensemble_over_the_group_makes_any_function_equivariant(rng):
    def lopsided(x):  # a shift and a one-sided gradient: commutes with no flip
        return np.roll(x, 1, axis=1) + 0.5 * np.diff(x, axis=0, append=0)

    image = rng.random((9, 9, 1)).astype(np.float32)
    names = list(dihedral.TRANSFORMS)
    out = dihedral.ensemble(lopsided, image, names)
    for name in names:
        moved = dihedral.ensemble(
            lopsided, np.ascontiguousarray(dihedral.forward(image, name)), names
        )
        np.testing.assert_allclose(moved, dihedral.forward(out, name), atol=1e-6)
    assert not np.allclose(lopsided(image), out)


def _fit(photo, spec, augment, **changes):
    target = load_target(spec)
    pair = Pair.of(photo, target(photo))
    config = replace(TINY_FIT, steps=80, augment=augment, augment_check=0.5, **changes)
    return fit(pair, TINY_MODEL, config, show_progress=False)


def test_auto_keeps_the_flips_of_a_horizontal_blur_and_drops_its_quarter_turns(photo):
    imitator = _fit(photo, "motion-blur:length=9,angle=0", "auto")
    assert imitator.equivariances == ["identity", "flip-lr", "flip-ud", "rot180"]
    scores = imitator.metrics["equivariance_psnr"]
    assert set(scores) == set(dihedral.TRANSFORMS)
    assert min(scores["rot90"], scores["transpose"]) < scores["identity"] - 5  # far off


def test_test_finds_them_as_auto_does_and_trains_on_the_example_alone(photo):
    spec = "noise:sigma=25|median"  # not linear: the network learns from the crops

    def course(imitator):  # what the fit measured, step by step
        return [(r["step"], r.get("loss"), r.get("val_psnr")) for r in imitator.history]

    tested, plain, auto = (_fit(photo, spec, mode) for mode in ("test", "none", "auto"))
    assert len(tested.equivariances) > 1 and tested.equivariances == auto.equivariances
    assert course(tested) == course(plain)  # the same crops, the same steps
    assert course(auto) != course(plain)  # auto trains on the transforms it found


def test_auto_keeps_all_eight_for_an_isotropic_filter(photo):
    imitator = _fit(photo, "gaussian-blur:sigma=1.5", "auto")
    assert imitator.equivariances == list(dihedral.TRANSFORMS)


def test_all_trains_on_eight_pairs_and_the_ensemble_is_equivariant(photo):
    imitator = _fit(photo, "noise:sigma=25|median", "all")
    assert imitator.equivariances == list(dihedral.TRANSFORMS)
    assert imitator.metrics["equivariance_psnr"] is None  # assumed, not tested
    x = photo[:40, :48]
    out = imitator.apply(x, ensemble=True)
    for name in ("rot90", "flip-lr", "anti-transpose"):
        moved = imitator.apply(np.ascontiguousarray(dihedral.forward(x, name)), ensemble=True)
        np.testing.assert_allclose(moved, dihedral.forward(out, name), atol=1e-5)
    assert not np.allclose(imitator.apply(x), out, atol=1e-4)  # one pass is not the mean


def test_none_is_a_plain_fit_and_the_settings_are_checked(photo):
    imitator = _fit(photo, "gaussian-blur:sigma=1.5", "none")
    assert imitator.equivariances == ["identity"]
    np.testing.assert_array_equal(imitator.apply(photo, ensemble=True), imitator.apply(photo))
    with pytest.raises(ValueError, match="'sideways' is not a valid Augment"):
        FitConfig(augment="sideways")
    with pytest.raises(ValueError, match="augment_check is 1.5; expected in"):
        FitConfig(augment_check=1.5)


def test_cli_augments_and_applies_the_ensemble(tmp_path, photo):
    from onepair.images import load_image, save_image
    from test_cli import TINY, invoke

    save_image(tmp_path / "x.png", photo, bit_depth=16)
    save_image(tmp_path / "y.png", load_target("motion-blur:length=9,angle=0")(photo), 16)
    fitted = invoke("fit", tmp_path / "x.png", tmp_path / "y.png", "-o", tmp_path / "run",
                    *TINY, "--augment", "auto")  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    assert "(found on the held-out blocks): identity, flip-lr, flip-ud, rot180" in fitted.output
    applied = invoke("apply", tmp_path / "run", tmp_path / "x.png", "-o", tmp_path / "out",
                     "--ensemble", "--quiet")  # fmt: skip
    assert applied.exit_code == 0, applied.output
    plain = invoke("apply", tmp_path / "run", tmp_path / "x.png", "-o", tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    averaged, single = load_image(tmp_path / "out/x.png"), load_image(tmp_path / "plain/x.png")
    assert averaged.shape == single.shape and not np.array_equal(averaged, single)
