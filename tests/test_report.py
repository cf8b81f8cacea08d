"""The audit's HTML report: self-contained, escaped, complete, graceful; and in a browser."""

from __future__ import annotations

import base64
import copy
import io
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from browser import browser_missing, render_in_browser
from onepair.images import save_image
from onepair.report import evidence_text, plots, recommended_index, render
from onepair.samples import sample

EVIL = "<script>alert(1)</script>"
TARGET = f"gaussian-blur:sigma=2 {EVIL}"
HEADINGS = [
    "How well one published pair copies the model",
    "Target vs imitation on images it never saw",
    "Effective receptive field",
    "Defences",
    "Method",
]
PNG = b"\x89PNG\r\n\x1a\n"
SAMPLES = ("coffee", "chelsea")


class Page(HTMLParser):
    """The tags of an HTML page that matter here: img srcs, links, scripts, headings, title."""

    def __init__(self, text: str):
        super().__init__()
        self.imgs: list[str] = []
        self.links: list[dict] = []
        self.scripts: list[dict] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "title": []}
        self._open: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs.get("src") or "")
        elif tag == "link":
            self.links.append(attrs)
        elif tag == "script":
            self.scripts.append(attrs)
        if tag in self.headings:
            self._open = tag
            self.headings[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.headings[self._open][-1] += data


def _blur(image: np.ndarray) -> np.ndarray:
    return gaussian_filter(image, sigma=(2, 2, 0)).astype(np.float32)


def _heat(sigma: float) -> np.ndarray:
    y, x = np.mgrid[-15:16, -15:16]
    g = np.log10(np.exp(-(x**2 + y**2) / (2 * sigma**2)) + 1e-4) / 4 + 1
    return np.stack([g, g**2, 1 - g], axis=-1).astype(np.float32)


def make_report(folder: Path) -> dict:
    """A report folder with small PNGs and data following report.json's schema."""
    images = folder / "images"
    example = sample("astronaut")[100:164, 180:244]
    save_image(images / "example_input.png", example)
    save_image(images / "example_output.png", _blur(example))
    samples = []
    for name in SAMPLES:
        x = sample(name)[60:124, 100:164]
        y = _blur(x)
        z = y + 0.01 * np.sin(np.arange(64, dtype=np.float32))[:, None, None]
        for kind, image in (("input", x), ("target", y), ("imitation", z)):
            save_image(images / f"{name}_{kind}.png", image)
        save_image(images / f"{name}_error.png", np.abs(z - y) * 10)
        samples.append(
            {
                "name": f"builtin:{name}",
                "psnr": 40.1,
                "ssim": 0.97,
                "error_scale": 10.0,
                **{k: f"images/{name}_{k}.png" for k in ("input", "target", "imitation", "error")},
            }
        )
    save_image(images / "erf_target.png", _heat(2.0))
    save_image(images / "erf_imitator.png", _heat(2.5))
    curve = [{"seconds": 5.0 * i, "psnr": 30 + 11 * (1 - 0.7**i), "ssim": 0.9} for i in range(1, 9)]
    watermark = {
        "kind": "watermark",
        "in_published": 1.0,
        "bit_accuracy": 0.52,
        "rate": 0.0,
        "control_rate": 0.0,
        "threshold": 0.84,
    }
    signature = {
        "kind": "signature",
        "in_published": 1.0,
        "bit_accuracy": None,
        "rate": 1.0,
        "control_rate": 0.0,
        "threshold": 0.3,
        "correlation": 0.95,
    }

    def defence(kind, strength, label, psnr, cost, evidence=None):
        return {
            "defense": kind,
            "strength": strength,
            "label": label,
            "psnr": psnr,
            "ssim": psnr / 42,
            "cost_psnr": cost,
            "cost_ssim": None if cost is None else 0.97,
            "fit_seconds": 20.0,
            "evidence": evidence,
        }

    return {
        "onepair_version": "0.1.0",
        "created": "2026-11-27T12:00:00Z",
        "command": f"onepair audit --target '{TARGET}' --example builtin:astronaut -o out",
        "target": TARGET,
        "example": {
            "source": "builtin:astronaut",
            "height": 64,
            "width": 64,
            "in_channels": 3,
            "out_channels": 3,
            "scale": 1,
            "input": "images/example_input.png",
            "output": "images/example_output.png",
        },
        "held_out": ["builtin:coffee", "builtin:chelsea", "builtin:rocket", "builtin:camera"],
        "queries": 57,
        "seconds": 812.4,
        "attack": {
            "floor_psnr": 26.6,
            "imitators": [
                {
                    "name": "small",
                    "description": "U-Net, 2 levels, 8 channels",
                    "num_params": 12345,
                    "receptive_field": 23,
                    "fit_seconds": 40.0,
                    "steps": 800,
                    "psnr": 38.5,
                    "psnr_std": 1.1,
                    "ssim": 0.96,
                    "val_psnr": 39.0,
                    "curve": [{**p, "psnr": p["psnr"] - 2.5} for p in curve],
                },
                {
                    "name": "default",
                    "description": "U-Net, 3 levels, 32 channels",
                    "num_params": 467890,
                    "receptive_field": 45,
                    "fit_seconds": 40.0,
                    "steps": 300,
                    "psnr": 41.2,
                    "psnr_std": 1.3,
                    "ssim": 0.98,
                    "val_psnr": 42.0,
                    "curve": curve,
                },
            ],
            "best": "default",
            "samples": samples,
        },
        "erf": {
            "radius": 3.2,
            "mass": 0.95,
            "image": "images/erf_target.png",
            "imitator_radius": 3.5,
            "imitator_image": "images/erf_imitator.png",
            "images": 8,
            "sigma": 25.0,
            "delta": 0.1,
        },
        "defenses": [
            defence("none", None, "undefended", 41.0, None),
            defence("jpeg", 75, "JPEG q75", 36.0, 38.2),
            defence("jpeg", 50, "JPEG q50", 33.0, 34.1),
            defence(
                "invisible-watermark",
                "dwtDctSvd",
                "invisible watermark (dwtDctSvd)",
                40.0,
                43.0,
                watermark,
            ),
            defence(
                "perturbation", 40.0, "anti-imitation perturbation (40 dB)", 36.5, 40.0, signature
            ),
            defence(
                "perturbation", 35.0, "anti-imitation perturbation (35 dB)", 30.0, 35.0, signature
            ),
        ],
        "verdict": {
            "exposure": "high",
            "summary": f"One published pair lets an attacker copy {TARGET} to 41.0 dB.",
            "recommended": "anti-imitation perturbation (35 dB)",
            "recommendation": "Publish with the anti-imitation perturbation at 35 dB.",
            "details": ["The copy beats the identity floor by 14.6 dB.", f"Spec: {EVIL}"],
        },
        "settings": {"seconds": 60, "defense_seconds": 20, "size": 256, "seed": 0},
    }


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, make_report(tmp_path)


def _decode(src: str) -> bytes:
    head, payload = src.split(",", 1)
    assert head == "data:image/png;base64", head[:60]
    return base64.b64decode(payload, validate=True)


def test_report_is_self_contained(report):
    folder, data = report
    text = render(data, folder).read_text("utf-8")
    page = Page(text)
    assert len(page.imgs) == 2 + 4 * len(SAMPLES) + 2 + 2  # example, samples, ERF, two plots
    for src in page.imgs:
        assert _decode(src).startswith(PNG)
    assert page.links == [] and page.scripts == []
    for needle in ("http://", "https://", "url(", "@import", "//cdn", "@font-face"):
        assert needle not in text
    # the example thumbnails are the audit's files, byte for byte
    assert _decode(page.imgs[0]) == (folder / data["example"]["input"]).read_bytes()


def test_plots_are_drawn_at_their_size(report):
    _, data = report
    png = plots.fidelity_curve(data["attack"]["imitators"], 26.6)
    size = (round(plots.WIDTH_IN * plots.DPI), round(plots.HEIGHT_IN * plots.DPI))
    assert Image.open(io.BytesIO(png)).size == size
    png = plots.tradeoff(data["defenses"], recommended=5, floor_psnr=26.6)
    assert Image.open(io.BytesIO(png)).size == size
    assert plots.fidelity_curve([], 26.6) is None
    assert plots.fidelity_curve([{"name": "x", "curve": [], "psnr": None}], 26.6) is None
    assert plots.tradeoff([]) is None
    assert plots.tradeoff(data["defenses"][:1]) is not None  # the undefended line alone


def test_strings_are_escaped(report):
    folder, data = report
    text = render(data, folder).read_text("utf-8")
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    assert page.scripts == []
    assert page.headings["title"] == [f"onepair audit: {TARGET}"]
    assert page.headings["h1"] == [f"onepair audit: {TARGET}"]


def test_every_section_and_figure_is_there(report):
    folder, data = report
    text = render(data, folder).read_text("utf-8")
    page = Page(text)
    for heading in HEADINGS:
        assert heading in page.headings["h2"]
    assert '<div class="verdict high">' in text
    assert "Publish with the anti-imitation perturbation at 35 dB." in text
    assert (
        "watermark found in 0/4 copies (bit accuracy 0.52; in published 1.00; "
        "false positives 0/4)" in text
    )
    assert "signature found in 4/4 copies (corr 0.95; false positives 0/4)" in text
    assert "\u22128.0 dB" in text  # JPEG q50: 33.0 against 41.0 undefended
    assert "41.20 \u00b1 1.30" in text and "467,890" in text and "45\u00d745 px" in text
    assert "13 min 32 s" in text  # 812.4 s of wall time
    assert "2026-11-27 12:00 UTC" in text
    assert text.count("recommended</b>") == 1
    assert "anti-imitation perturbation (35 dB) <b class='rec'>recommended</b>" in text


def test_missing_parts_render_with_notes(report):
    folder, data = report
    data["erf"] = None
    data["defenses"] = []
    (folder / data["attack"]["samples"][0]["imitation"]).unlink()
    text = render(data, folder).read_text("utf-8")
    assert "The effective receptive field was not measured" in text
    assert "No defence was evaluated." in text
    assert "image images/coffee_imitation.png not found" in text
    assert len(Page(text).imgs) == 2 + 4 * len(SAMPLES) - 1 + 1  # no ERF, no trade-off plot
    for heading in HEADINGS:
        assert heading in Page(text).headings["h2"]

    bare = {"target": "t", "verdict": {"exposure": "moderate"}, "attack": {"samples": []}}
    text = render(bare, folder, "bare.html").read_text("utf-8")
    assert '<div class="verdict moderate">' in text
    assert "No imitator was fitted." in text and "No side-by-side samples" in text
    assert (folder / "bare.html").is_file()


def test_odd_values_do_not_crash(report):
    folder, data = report
    data["verdict"]["exposure"] = "SEVERE?"
    data["example"]["input"] = "images/not-a-png.png"
    (folder / "images/not-a-png.png").write_text("hello")
    data["defenses"][3]["evidence"] = None
    data["defenses"][1]["psnr"] = float("inf")
    data["attack"]["imitators"][0]["curve"] = [{"seconds": "soon", "psnr": None}]
    text = render(data, folder).read_text("utf-8")
    assert '<div class="verdict unknown">' in text
    assert "is not a PNG or JPEG" in text
    assert "watermark found" not in text


def test_recommended_index_matches_label_or_kind(report):
    _, data = report
    defenses, verdict = data["defenses"], data["verdict"]
    assert recommended_index(defenses, verdict) == 5
    kind = {**verdict, "recommended": "perturbation"}
    assert recommended_index(defenses, kind) == 5  # two of that kind: the one the text names
    assert recommended_index(defenses, {**kind, "recommendation": "Add noise."}) is None
    assert (
        recommended_index(
            defenses, {**verdict, "recommended": "jpeg", "recommendation": "JPEG q50 is enough"}
        )
        == 2
    )
    assert recommended_index(defenses, {**verdict, "recommended": None}) is None
    assert recommended_index(defenses[:2], {**verdict, "recommended": "jpeg"}) == 1
    by_strength = {**verdict, "recommended": "jpeg", "recommendation": "Compress at quality 75."}
    assert recommended_index(defenses, by_strength) == 1


def test_evidence_text_counts_copies():
    watermark = {
        "kind": "watermark",
        "in_published": 1.0,
        "bit_accuracy": 0.9,
        "rate": 0.75,
        "control_rate": 0.25,
    }
    assert evidence_text(watermark, 4) == (
        "watermark found in 3/4 copies (bit accuracy 0.90; in published 1.00; false positives 1/4)"
    )
    assert evidence_text(watermark, 0).startswith("watermark found in 75% of copies")
    assert evidence_text(None, 4) == "\u2014"


def test_render_refuses_bad_input(tmp_path):
    with pytest.raises(TypeError, match="expected the dict of report.json"):
        render([1, 2], tmp_path)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render({}, tmp_path / "nowhere")


# ----------------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def shown(tmp_path_factory) -> dict:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("report")
    data = make_report(folder)
    facts = render_in_browser(render(data, folder), folder / "report.png", width=1280)
    keep = os.environ.get("ONEPAIR_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(facts["screenshot"], Path(keep) / "report.png")
    return {**facts, "data": copy.deepcopy(data)}


def test_browser_shows_every_image_and_heading(shown):
    assert shown["title"] == f"onepair audit: {TARGET}"
    assert shown["h1"] == [f"onepair audit: {TARGET}"]
    assert shown["images"] == 2 + 4 * len(SAMPLES) + 2 + 2
    assert shown["broken"] == []
    for heading in HEADINGS:
        assert heading in shown["headings"]
    assert shown["errors"] == []  # the console log is available from chromedriver
    assert shown["requests"] == []  # nothing fetched from the network


def test_browser_screenshot_is_the_whole_page(shown):
    with Image.open(shown["screenshot"]) as image:
        image.load()
        assert image.format == "PNG"
        assert image.width == 1280
        assert abs(image.height - shown["height"]) <= 2
    assert shown["height"] > 2000  # six sections, not a blank page
