"""Watermarks an owner can put on a published output, and their detectors.

* Visible: a text drawn in a diagonal grid over the image at an ``opacity``
  (Pillow's bundled font; no font files needed).
* Invisible: the ``invisible-watermark`` package (``imwatermark``): ``dwtDct``
  and ``dwtDctSvd`` (a 32-bit message in the block DCT of the Haar wavelet's
  approximation band) and ``rivaGan`` (its ONNX encoder and decoder, which
  ship in the wheel, on onnxruntime). Colour images go through the package's
  own ``encode``/``decode`` (the mark sits in the U chroma plane). Gray images
  carry the mark in their only plane, through the package's frame coder in
  floating point (its 8-bit path wraps around on bright pixels); RivaGAN
  takes colour images only.

The detector's score is the fraction of the 32 bits read back correctly; a
mark counts as found when at most ``threshold`` of the bits could match by
chance with probability 1e-3 (26 of 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onepair.images import quantize

METHODS = ("dwtDct", "dwtDctSvd", "rivaGan")
BITS = 32
SCALE = 36  # the package's default quantisation step for the DCT methods


def _imwatermark():
    try:
        import imwatermark
    except ImportError:
        raise ImportError(
            "the invisible watermark needs the invisible-watermark package: "
            "pip install --no-deps invisible-watermark==0.2.0 (it declares opencv-python, "
            "which clashes with the opencv-python-headless onepair uses) and pip install "
            "'onepair[zoo]' for PyWavelets, OpenCV and onnxruntime"
        ) from None
    return imwatermark


def message(seed: int) -> list[int]:
    """The 32-bit message for ``seed`` (the owner's key)."""
    return [int(b) for b in np.random.default_rng([seed, 0x6F6E65]).integers(0, 2, BITS)]


def _check(image: np.ndarray, method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown watermark method {method!r}; allowed: {', '.join(METHODS)}")
    h, w, c = image.shape
    if h * w < 256 * 256:
        raise ValueError(
            f"the invisible watermark needs an image of at least 256x256 pixels; got {h}x{w}"
        )
    if c not in (1, 3) or (method == "rivaGan" and c != 3):
        allowed = "RGB" if method == "rivaGan" else "gray or RGB"
        raise ValueError(f"{method} watermarks {allowed} images; got {c} channels")


def _coder(method: str, bits: list[int]):
    from imwatermark.dwtDctSvd import EmbedDwtDctSvd
    from imwatermark.maxDct import EmbedMaxDct

    coder = EmbedMaxDct if method == "dwtDct" else EmbedDwtDctSvd
    return coder(bits, wmLen=BITS, scales=[SCALE, 0, 0])


def _bgr8(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(quantize(image, 8)[:, :, ::-1])


def embed(image: np.ndarray, method: str, bits: list[int]) -> np.ndarray:
    """``image`` (H, W, 1|3) with ``bits`` hidden by ``method``, as 8-bit values in [0, 1]."""
    _check(image, method)
    iw = _imwatermark()
    if image.shape[2] == 3:
        encoder = iw.WatermarkEncoder()
        encoder.set_watermark("bits", bits)
        if method == "rivaGan":
            iw.WatermarkEncoder.loadModel()
        marked = encoder.encode(_bgr8(image), method)
        return marked[:, :, ::-1].astype(np.float32) / 255.0
    import pywt

    plane = quantize(image, 8)[:, :, 0].astype(np.float64)
    h4, w4 = plane.shape[0] // 4 * 4, plane.shape[1] // 4 * 4
    low, details = pywt.dwt2(plane[:h4, :w4], "haar")
    _coder(method, bits).encode_frame(low, SCALE)
    plane[:h4, :w4] = pywt.idwt2((low, details), "haar")
    return (np.clip(np.round(plane), 0, 255) / 255.0).astype(np.float32)[:, :, None]


def extract(image: np.ndarray, method: str) -> list[int]:
    """The 32 bits ``method`` reads from ``image`` (H, W, 1|3)."""
    _check(image, method)
    iw = _imwatermark()
    if image.shape[2] == 3:
        if method == "rivaGan":
            iw.WatermarkDecoder.loadModel()
        bits = iw.WatermarkDecoder("bits", BITS).decode(_bgr8(image), method)
        return [int(b) for b in bits]
    import pywt

    plane = quantize(image, 8)[:, :, 0].astype(np.float64)
    h4, w4 = plane.shape[0] // 4 * 4, plane.shape[1] // 4 * 4
    low, _ = pywt.dwt2(plane[:h4, :w4], "haar")
    scores = _coder(method, []).decode_frame(low, SCALE, [[] for _ in range(BITS)])
    return [int(np.mean(s) > 0.5) for s in scores]


def _chance_threshold(p: float = 1e-3) -> float:
    """Smallest fraction of bits that random bits reach with probability < ``p``."""
    from scipy.stats import binom

    k = next(k for k in range(BITS + 1) if binom.sf(k - 1, BITS, 0.5) < p)
    return k / BITS


@dataclass(frozen=True)
class WatermarkSignature:
    """What the owner keeps: the method and the message. ``score`` is the bit accuracy."""

    method: str
    bits: tuple[int, ...]
    kind: str = "watermark"
    threshold: float = _chance_threshold()

    def score(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
        """Fraction of the message's bits read back from ``z`` (``x``, ``y`` unused)."""
        found = extract(z, self.method)
        return float(np.mean(np.array(found) == np.array(self.bits)))


def visible(image: np.ndarray, opacity: float, text: str = "(c) sample output") -> np.ndarray:
    """``image`` with ``text`` in white, tiled diagonally over it at ``opacity`` in (0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    if not 0.0 < opacity <= 1.0:
        raise ValueError(f"watermark opacity is {opacity}; expected a value in (0, 1]")
    h, w = image.shape[:2]
    size = max(10, min(h, w) // 12)
    font = ImageFont.load_default(size=size)
    side = int(np.hypot(h, w)) + 2 * size
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    step_x, step_y = int(draw.textlength(text, font=font)) + 2 * size, 3 * size
    for row, top in enumerate(range(0, side, step_y)):
        for left in range(-(row % 2) * step_x // 2, side, step_x):
            draw.text((left, top), text, fill=255, font=font)
    canvas = canvas.rotate(30, resample=Image.Resampling.BILINEAR)
    offset_y, offset_x = (side - h) // 2, (side - w) // 2
    mask = np.asarray(canvas, np.float32)[offset_y : offset_y + h, offset_x : offset_x + w] / 255
    alpha = opacity * mask[:, :, None]
    return ((1.0 - alpha) * image + alpha).astype(np.float32)
