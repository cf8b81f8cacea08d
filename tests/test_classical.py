"""targets/classical.py, deconvolve.py, effects.py, degrade.py: every classical name,
known values, invariants."""

from __future__ import annotations

import numpy as np
import pytest

from onepair.metrics import psnr
from onepair.targets import (
    DEGRADATIONS,
    MODELS,
    classical,
    deconvolve,
    degrade,
    effects,
    load_target,
)

CLASSICAL = [
    name
    for name, (f, _) in MODELS.items()
    if f.__module__ in (classical.__name__, deconvolve.__name__, effects.__name__)
]
FRONTS = [name for name, (f, _) in DEGRADATIONS.items() if f.__module__ == degrade.__name__]
RGB_ONLY = {"grayscale", "saturation", "hed-stains"}
SLOW = {"bm3d"}  # tested in test_bm3d_denoises, marked slow


def expected_shape(name: str, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    h, w, c = shape
    if name in ("bicubic-up", "lanczos-up"):
        return (2 * h, 2 * w, c)
    return {"grayscale": (h, w, 1), "sepia": (h, w, 3)}.get(name, shape)


def check_image(out: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    assert out.shape == shape and out.dtype == np.float32, (name, out.shape, out.dtype)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0, name


@pytest.mark.parametrize("name", [n for n in CLASSICAL if n not in SLOW])
def test_every_classical_model_runs_and_is_deterministic(name, photo):
    for image in (photo, photo[:, :, 1:2]):
        if name in RGB_ONLY and image.shape[2] == 1:
            with pytest.raises(ValueError, match="needs an RGB image.*got 96x80x1"):
                load_target(name)(image)
            continue
        out = load_target(name)(image)
        check_image(out, expected_shape(name, image.shape), name)
        np.testing.assert_array_equal(out, load_target(name)(image.copy()))
        if name != "identity":
            assert out.shape != image.shape or not np.allclose(out, image, atol=1e-3), name


@pytest.mark.parametrize("name", FRONTS)
def test_every_degradation_runs_and_is_seeded(name, photo):
    random = name in ("noise", "poisson")
    if name == "hematoxylin":  # RGB slide -> one stain channel
        out = load_target("hematoxylin|identity").degrade(photo, seed=1)
        check_image(out, (*photo.shape[:2], 1), name)
        return
    for image in (photo, photo[:, :, :1]):
        target = load_target(f"{name}|identity")
        out = target.degrade(image, seed=1)
        h, w, c = image.shape
        check_image(out, (h // 2, w // 2, c) if name == "downscale" else image.shape, name)
        np.testing.assert_array_equal(out, target.degrade(image, seed=1))
        assert np.array_equal(out, target.degrade(image, seed=2)) != random, name


def test_colour_only_and_8_bit_ops_name_the_channel_count(photo):
    two = photo[:, :, :2]
    for name in ("stylization", "detail-enhance", "edge-preserving", "jpeg"):
        with pytest.raises(ValueError, match=f"{name} needs a 1- or 3-channel image; got 96x80x2"):
            load_target(name)(two)
    with pytest.raises(ValueError, match="sepia needs an RGB image"):
        load_target("sepia")(two)


def test_bad_parameters_give_the_spec_errors():
    with pytest.raises(ValueError, match="unknown parameter 'strength'.*accepted: sigma"):
        load_target("wavelet-denoise:strength=3")
    with pytest.raises(ValueError, match="length='long'.*must be a number"):
        load_target("motion-blur:length=long")
    with pytest.raises(ValueError, match="unknown parameter 'size'.*accepted: factor"):
        load_target("downscale:size=2|bicubic-up")


# ----------------------------------------------------------------------------- colour


def test_gamma_known_values(photo):
    np.testing.assert_array_equal(load_target("gamma:gamma=1")(photo), photo)
    np.testing.assert_allclose(load_target("gamma:gamma=0.5")(photo), np.sqrt(photo), atol=1e-6)


def test_grayscale_is_the_bt709_luminance(photo):
    from skimage.color import rgb2gray

    out = load_target("grayscale")(photo)
    np.testing.assert_allclose(out[:, :, 0], rgb2gray(photo), atol=1e-6)
    r, g, b = photo[5, 7]
    assert out[5, 7, 0] == pytest.approx(0.2125 * r + 0.7154 * g + 0.0721 * b, abs=1e-6)


def test_saturation_and_sepia_known_values(photo):
    np.testing.assert_allclose(load_target("saturation:factor=1")(photo), photo, atol=1e-5)
    gray = np.repeat(photo[:, :, :1], 3, axis=2)
    np.testing.assert_allclose(load_target("saturation:factor=3")(gray), gray, atol=1e-6)
    from skimage.color import rgb2hsv

    more = rgb2hsv(load_target("saturation:factor=1.5")(photo))[..., 1]
    assert more.mean() > 1.3 * rgb2hsv(photo)[..., 1].mean()
    np.testing.assert_allclose(load_target("sepia:amount=0")(photo), photo, atol=1e-6)
    toned = load_target("sepia")(np.full((4, 4, 1), 0.5, np.float32))
    np.testing.assert_allclose(toned[0, 0], np.clip(0.5 * effects.SEPIA.sum(1), 0, 1), atol=1e-6)


def test_hed_stains_are_rgb2hed_over_fixed_constants():
    from skimage.color import rgb2hed

    from onepair.samples import sample

    ihc = sample("ihc")[200:296, 300:380]
    out = load_target("hed-stains")(ihc)
    reference = rgb2hed(ihc.astype(np.float64))
    inside = reference < effects.HED_MAX
    assert inside.mean() > 0.99
    np.testing.assert_allclose((out * effects.HED_MAX)[inside], reference[inside], atol=1e-6)
    assert (out[~inside] == 1.0).all()
    half = load_target("hed-stains")(ihc[:48])  # a fixed function: no per-image rescaling
    np.testing.assert_array_equal(half, out[:48])


# ----------------------------------------------------------------------------- resampling, JPEG


@pytest.mark.parametrize("name", ["bicubic-up", "lanczos-up"])
def test_upscaling_then_area_downscaling_returns_the_input(name, photo):
    for factor in (2, 3):
        up = load_target(f"{name}:factor={factor}")(photo[:37, :31])
        assert up.shape == (37 * factor, 31 * factor, 3)
        back = degrade.downscale(up, np.random.default_rng(0), factor=factor)
        assert psnr(back, photo[:37, :31]) > 35.0


def test_downscale_then_upscale_is_a_super_resolution_pair(photo):
    target = load_target("downscale:factor=2|bicubic-up:factor=2")
    small = target.degrade(photo[:37, :31])
    assert small.shape == (18, 15, 3)
    np.testing.assert_allclose(small[0, 0], photo[:2, :2].mean(axis=(0, 1)), atol=1e-6)
    assert target(small).shape == (36, 30, 3)


def test_jpeg_quality_orders_the_error(photo):
    exact = psnr(load_target("jpeg:quality=100,subsample=false")(photo), photo)
    fine = psnr(load_target("jpeg:quality=100")(photo), photo)
    coarse = psnr(load_target("jpeg:quality=10")(photo), photo)
    assert exact > 45.0 and fine > 35.0 and coarse < fine - 8.0
    gray = photo[:, :, :1]
    assert psnr(load_target("jpeg:quality=100")(gray), gray) > 45.0
    np.testing.assert_array_equal(
        load_target("jpeg:quality=20|identity").degrade(photo),
        load_target("jpeg:quality=20")(photo),
    )


# ----------------------------------------------------------------------------- edges, contrast


def test_sobel_and_canny_on_a_step():
    step = np.zeros((32, 40, 1), np.float32)
    step[:, 20:] = 1.0
    assert not load_target("sobel")(np.full((16, 16, 3), 0.4, np.float32)).any()
    edges = load_target("sobel")(step)[:, :, 0]
    assert set(np.argmax(edges, axis=1)) <= {19, 20} and edges[:, :15].max() == 0.0
    binary = load_target("canny")(step)
    assert set(np.unique(binary)) == {0.0, 1.0}
    assert set(np.nonzero(binary[5:-5, :, 0])[1]) <= {19, 20}


def test_clahe_raises_local_contrast(photo):
    dull = 0.4 + 0.2 * photo
    assert load_target("clahe")(dull).std() > 2.0 * dull.std()


def test_opencv_filters_smooth_or_sharpen(photo):
    def roughness(image):
        return np.abs(np.diff(image, axis=1)).mean()

    def flatness(image):  # the share of neighbours within one 8-bit step
        return (np.abs(np.diff(image, axis=1)) < 1.01 / 255).mean()

    assert roughness(load_target("edge-preserving")(photo)) < 0.7 * roughness(photo)
    assert flatness(load_target("stylization")(photo)) > 1.4 * flatness(photo)
    assert roughness(load_target("detail-enhance")(photo)) > 1.2 * roughness(photo)
    gray = photo[:, :, :1]
    assert load_target("detail-enhance")(gray).shape == gray.shape


# ----------------------------------------------------------------------------- blur, deblur


def test_motion_kernel_shape():
    np.testing.assert_allclose(deconvolve.motion_kernel(5, 0.0)[2], np.full(5, 0.2))
    assert deconvolve.motion_kernel(5, 0.0).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        deconvolve.motion_kernel(4, 0.0)[2], [0.125, 0.25, 0.25, 0.25, 0.125]
    )
    np.testing.assert_allclose(
        deconvolve.motion_kernel(7, 90.0), deconvolve.motion_kernel(7, 0.0).T, atol=1e-12
    )
    diagonal = deconvolve.motion_kernel(9, 45.0)
    assert diagonal.sum() == pytest.approx(1.0) and diagonal.min() >= 0.0
    np.testing.assert_allclose(diagonal, diagonal[::-1, ::-1], atol=1e-12)  # centred


def test_motion_blur_is_linear_and_keeps_constants(photo, rng):
    blur = load_target("motion-blur:length=9,angle=30")
    np.testing.assert_allclose(blur(np.full((20, 24, 3), 0.3, np.float32)), 0.3, atol=1e-6)
    other = rng.random(photo.shape).astype(np.float32)
    np.testing.assert_allclose(
        blur(0.3 * photo + 0.6 * other), 0.3 * blur(photo) + 0.6 * blur(other), atol=1e-5
    )
    assert blur(photo).mean() == pytest.approx(photo.mean(), abs=2e-3)


@pytest.mark.parametrize("name", ["richardson-lucy", "wiener"])
def test_deconvolution_undoes_a_gaussian_blur(name, photo):
    blurred = load_target("blur:sigma=1.5|identity").degrade(photo)
    restored = load_target(f"{name}:sigma=1.5")(blurred)
    assert psnr(restored, photo) > psnr(blurred, photo) + 0.8


# ----------------------------------------------------------------------------- noise, denoisers


def test_poisson_variance_scales_with_peak():
    flat = np.full((200, 200, 1), 0.5, np.float32)
    for peak in (10.0, 40.0):
        noisy = load_target(f"poisson:peak={peak},clip=false|identity").degrade(flat, seed=0)
        assert noisy.mean() == pytest.approx(0.5, abs=0.01)
        assert noisy.var() == pytest.approx(0.5 / peak, rel=0.06)
    assert not degrade.poisson(np.zeros((8, 8, 1), np.float32), np.random.default_rng(0)).any()


@pytest.mark.parametrize("name", ["wavelet-denoise", "cv-nl-means"])
def test_denoisers_remove_sigma_25_noise(name, photo):
    for image in (photo, photo[:, :, :1]):
        target = load_target(f"noise:sigma=25|{name}")
        noisy = target.degrade(image, seed=0)
        assert psnr(target(noisy), image) > psnr(noisy, image) + 3.0, name


@pytest.mark.slow
def test_bm3d_denoises(photo):
    pytest.importorskip("bm3d")
    for image in (photo[:48, :40], photo[:48, :40, :1]):
        target = load_target("noise:sigma=25|bm3d")
        noisy = target.degrade(image, seed=0)
        out = target(noisy)
        check_image(out, image.shape, "bm3d")
        np.testing.assert_array_equal(out, target(noisy))
        assert psnr(out, image) > psnr(noisy, image) + 3.0
    gray_rgb = np.repeat(photo[:48, :40, :1], 3, axis=2)  # R = G = B: the gray path, no NaN
    out = load_target("bm3d")(gray_rgb)
    assert np.isfinite(out).all() and np.array_equal(out[..., 0], out[..., 2])


def test_missing_bm3d_names_the_package_and_its_licence(photo, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    with pytest.raises(ValueError, match="pip install bm3d.*non-commercial"):
        load_target("bm3d")(photo)


def test_hematoxylin_front_end_is_the_stain_of_the_ihc_slide():
    from skimage.color import rgb2hed

    from onepair.samples import sample

    ihc = sample("ihc", 128)
    h = load_target("hematoxylin|identity").degrade(ihc)[..., 0]
    reference = rgb2hed(ihc)[..., 0]
    assert np.corrcoef(h.ravel(), reference.ravel())[0, 1] > 0.999
    assert h.min() == 0.0 and h.max() == 1.0
    with pytest.raises(ValueError, match="needs an RGB image"):
        load_target("hematoxylin|identity").degrade(ihc[..., :1])
