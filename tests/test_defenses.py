"""Defences on the published pair: their costs, their effect on a copy, their signatures."""

from __future__ import annotations

import numpy as np
import pytest

from onepair import evaluate, fit, load_target, sample
from onepair.defenses import DEFENSES, Defense, evidence, parse_defense, publish, sweep
from onepair.fit import FitConfig
from onepair.metrics import psnr
from onepair.models import UNetConfig
from onepair.pairs import Pair
from onepair.perturbation import DecoySignature, design_decoy, perturb
from onepair.watermarks import WatermarkSignature, embed, extract, message, visible

pytest.importorskip("imwatermark", reason="invisible-watermark is installed by `make setup`")

TARGET = "gaussian-blur:sigma=2"
HELD_OUT = ("coffee", "camera")
COPY_MODEL = UNetConfig(depth=2, width=8, linear_kernel=9)
COPY_FIT = FitConfig(steps=40, crop=32, batch_size=4, val_every=10, device="cpu")


@pytest.fixture(scope="module")
def pair() -> Pair:
    target = load_target(TARGET)
    x = sample("astronaut", 256)
    return Pair.of(x, target(x))


def copy_psnr(published: Pair, keep: bool = False):
    """Held-out PSNR of a short copy fitted on ``published``, against the true target."""
    copy = fit(published, COPY_MODEL, COPY_FIT, show_progress=False)
    held = [sample(name, 256) for name in HELD_OUT]
    result = evaluate(copy, TARGET, held, names=list(HELD_OUT), keep_outputs=keep)
    return (result.mean("psnr"), list(result.outputs.values())) if keep else result.mean("psnr")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jpeg:0", "jpeg strength is '0'; expected quality, an integer 1..100"),
        ("jpeg:101", "expected quality, an integer 1..100"),
        ("jpeg:high", "expected quality, an integer 1..100"),
        ("jpeg", "needs a strength"),
        ("blur:3", "unknown defence 'blur' in 'blur:3'; allowed: none, jpeg, noise"),
        ("none:3", "takes no strength"),
        ("downscale:1.5", "integer factor 2..8"),
        ("visible-watermark:0", "opacity in (0, 1]"),
        ("invisible-watermark:lsb", "dwtDct, dwtDctSvd or rivaGan"),
        ("perturbation:5", "10..80"),
    ],
)
def test_bad_defences_say_what_is_allowed(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        parse_defense(text)
    assert expected in str(caught.value)


def test_parsed_strengths_are_typed_and_labelled() -> None:
    assert parse_defense("jpeg:50") == Defense("jpeg", 50)
    assert parse_defense("jpeg:50.0").label == "JPEG q50"
    assert parse_defense("perturbation:35").label == "perturbation, floor 35 dB"
    assert parse_defense("invisible-watermark:rivaGan").strength == "rivaGan"
    assert parse_defense("none") == Defense("none")
    # every default strength of the sweep is valid; RivaGAN only for colour
    assert {d.name for d in sweep(3)} == set(DEFENSES)
    assert Defense("invisible-watermark", "rivaGan") not in sweep(1)


def test_jpeg_costs_more_and_copies_worse_as_quality_falls(pair: Pair) -> None:
    qualities = (95, 60, 25, 8)
    published = [publish(pair, Defense("jpeg", q)) for q in qualities]
    costs = [p.cost_psnr for p in published]
    assert costs == sorted(costs, reverse=True), costs
    fidelity = [copy_psnr(pair)] + [copy_psnr(p.pair) for p in published]
    assert all(a > b for a, b in zip(fidelity, fidelity[1:], strict=False)), fidelity
    assert evidence(published[0], []) is None  # JPEG leaves no signature


def test_perturbation_holds_its_floor_and_copies_worse_as_it_grows(pair: Pair) -> None:
    floors = (45.0, 35.0, 25.0)
    fidelity = [copy_psnr(pair)]
    for floor in floors:
        published = publish(pair, Defense("perturbation", floor))
        assert floor <= published.cost_psnr < floor + 0.5  # clipping only raises it
        fidelity.append(copy_psnr(published.pair))
        assert fidelity[-1] < floor + 3.0  # the copy inherits the decoy
    assert all(a > b for a, b in zip(fidelity, fidelity[1:], strict=False)), fidelity


def test_the_decoy_is_a_signature_the_copy_carries_and_an_honest_copy_does_not(pair: Pair):
    published = publish(pair, Defense("perturbation", 35.0))
    assert published.published_score > 0.99
    _, copies = copy_psnr(published.pair, keep=True)
    _, honest = copy_psnr(pair, keep=True)
    found = evidence(published, copies, honest)
    assert found["kind"] == "signature" and found["images"] == len(HELD_OUT)
    assert found["rate"] == 1.0 and found["correlation"] > 0.7
    assert found["control_rate"] == 0.0 and found["control_score"] < found["threshold"]


def test_decoy_responds_more_on_new_images_than_a_random_filter(pair: Pair) -> None:
    from onepair.perturbation import decoy_response

    decoy = design_decoy(pair.input, kernel=9)
    random = np.random.default_rng(0).normal(size=(9, 9))

    def gain(kernel: np.ndarray) -> float:
        on_example = np.mean(decoy_response(pair.input, kernel) ** 2)
        held = [sample(name, 256) for name in HELD_OUT]
        return np.mean([np.mean(decoy_response(h, kernel) ** 2) for h in held]) / on_example

    assert gain(decoy) > gain(random)
    assert np.isclose(np.linalg.norm(decoy), 1.0)
    signature = DecoySignature(decoy)
    assert signature.score(pair.input, pair.output, pair.output) == 0.0


def test_perturbation_checks_its_floor(pair: Pair) -> None:
    with pytest.raises(ValueError, match="expected 10..80"):
        perturb(pair, 5.0)


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd", "rivaGan"])
def test_invisible_watermark_is_read_back_from_the_published_output(pair, method) -> None:
    published = publish(pair, Defense("invisible-watermark", method), seed=3)
    assert isinstance(published.signature, WatermarkSignature)
    assert published.published_score == 1.0
    assert published.cost_psnr > 33.0  # invisible: a small cost
    bits = list(published.signature.bits)
    assert bits == message(3) and extract(published.pair.output, method) == bits
    # the true output does not carry it (a chance level far below the threshold)
    assert published.signature.score(pair.input, pair.output, pair.output) < 0.8


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_gray_images_carry_the_mark_in_their_one_plane(method: str) -> None:
    gray = sample("camera", 256)
    marked = embed(gray, method, message(1))
    assert marked.shape == gray.shape
    signature = WatermarkSignature(method, tuple(message(1)))
    assert signature.score(gray, gray, marked) >= 0.9 > signature.threshold  # 8-bit rounding
    assert signature.score(gray, gray, gray) < signature.threshold  # may cost a bit or two
    assert psnr(marked, gray) > 40.0
    with pytest.raises(ValueError, match="rivaGan watermarks RGB images; got 1 channels"):
        embed(gray, "rivaGan", message(1))


def test_invisible_watermark_refuses_small_images() -> None:
    with pytest.raises(ValueError, match="at least 256x256 pixels; got 100x120"):
        embed(np.zeros((100, 120, 3), np.float32), "dwtDct", message(0))


def test_watermark_evidence_reports_detection_in_copies(pair: Pair) -> None:
    published = publish(pair, Defense("invisible-watermark", "dwtDctSvd"))
    _, copies = copy_psnr(published.pair, keep=True)
    found = evidence(published, copies, copies)
    assert found["kind"] == "watermark" and found["in_published"] == 1.0
    assert 0.0 <= found["bit_accuracy"] <= 1.0 and found["rate"] in (0.0, 0.5, 1.0)
    assert found["threshold"] == pytest.approx(26 / 32)  # chance below 1e-3 for 32 bits


def test_visible_watermark_costs_more_with_opacity(pair: Pair) -> None:
    costs = [publish(pair, Defense("visible-watermark", a)).cost_psnr for a in (0.2, 0.5, 1.0)]
    assert costs == sorted(costs, reverse=True)
    marked = visible(pair.output, 1.0)
    assert marked.max() == pytest.approx(1.0) and (marked >= pair.output - 1e-6).all()


def test_downscale_publishes_smaller_images_and_prices_the_lost_detail(pair: Pair) -> None:
    small = publish(pair, Defense("downscale", 4))
    assert small.pair.input.shape == (64, 64, 3) and small.pair.output.shape == (64, 64, 3)
    half = publish(pair, Defense("downscale", 2))
    assert half.cost_psnr > small.cost_psnr > 20.0


def test_noise_costs_what_its_sigma_says(pair: Pair) -> None:
    noisy = publish(pair, Defense("noise", 5.0))
    expected = 20 * np.log10(255 / 5.0)  # before clipping
    assert abs(noisy.cost_psnr - expected) < 0.5
    assert np.array_equal(noisy.pair.input, pair.input)  # only the output is touched
