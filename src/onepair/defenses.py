"""Defences an owner can apply to the pair they publish, and what each costs.

A defence turns the true pair (the example input and the model's output for
it) into the published pair, the one an attacker fits an imitator on:

=====================  ==============================  ============================
name                   strength                        applied to
=====================  ==============================  ============================
``none``               --                              nothing
``jpeg``               quality 1..100                  input and output (a figure)
``noise``              Gaussian sigma in 8-bit levels  output
``downscale``          integer factor 2..8             input and output
``visible-watermark``  opacity in (0, 1]               output
``invisible-watermark`` method: dwtDct|dwtDctSvd|rivaGan output
``perturbation``       the owner's floor in dB, 10..80  output (:mod:`perturbation`)
=====================  ==============================  ============================

The owner's cost is PSNR/SSIM of the published output against the true one
(a down-scaled output is first brought back to full size by bicubic
interpolation). Watermarks and the perturbation leave a signature the owner
keeps; :func:`evidence` looks for it in a suspect imitator's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from onepair.metrics import psnr, ssim
from onepair.pairs import Pair


@dataclass(frozen=True)
class Kind:
    """One row of :data:`DEFENSES`: how its strength is written and checked."""

    description: str
    strength: str  # what the strength means, for messages
    sweep: tuple[float | str, ...]  # the audit's default strengths, weakest first


DEFENSES: dict[str, Kind] = {
    "none": Kind("undefended", "none", ()),
    "jpeg": Kind("JPEG", "quality, an integer 1..100", (90, 70, 50, 30)),
    "noise": Kind("added noise", "sigma in 8-bit levels, > 0 and <= 128", (2, 5, 10)),
    "downscale": Kind("down-scaled", "integer factor 2..8", (2, 4)),
    "visible-watermark": Kind("visible watermark", "opacity in (0, 1]", (0.3, 0.6)),
    "invisible-watermark": Kind(
        "invisible watermark",
        "method: dwtDct, dwtDctSvd or rivaGan",
        ("dwtDct", "dwtDctSvd", "rivaGan"),
    ),
    "perturbation": Kind(
        "anti-imitation perturbation", "the owner's floor in dB, 10..80", (45, 40, 35, 30)
    ),
}


@dataclass(frozen=True)
class Defense:
    """A defence and its strength (``None`` only for ``none``)."""

    name: str
    strength: float | str | None = None

    def __post_init__(self) -> None:
        if self.name not in DEFENSES:
            raise ValueError(f"unknown defence {self.name!r}; allowed: {', '.join(DEFENSES)}")
        object.__setattr__(self, "strength", _checked(self.name, self.strength))

    @property
    def label(self) -> str:
        """A short name for tables: ``JPEG q50``, ``perturbation, floor 35 dB``."""
        s = self.strength
        return LABELS[self.name].format(f"{s:g}" if isinstance(s, float) else s)


LABELS = {
    "none": "undefended",
    "jpeg": "JPEG q{}",
    "noise": "noise sigma {}",
    "downscale": "down-scaled x{}",
    "visible-watermark": "visible watermark, opacity {}",
    "invisible-watermark": "invisible watermark ({})",
    "perturbation": "perturbation, floor {} dB",
}


def _checked(name: str, strength: object) -> float | str | None:
    kind = DEFENSES[name]
    if name == "none":
        if strength is not None:
            raise ValueError(f"defence none takes no strength; got {strength!r}")
        return None
    if name == "invisible-watermark":
        from onepair.watermarks import METHODS

        if strength not in METHODS:
            raise ValueError(
                f"invisible-watermark strength is {strength!r}; expected {kind.strength}"
            )
        return str(strength)
    try:
        value = float(strength)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} strength is {strength!r}; expected {kind.strength}") from None
    ok = {
        "jpeg": value.is_integer() and 1 <= value <= 100,
        "noise": 0 < value <= 128,
        "downscale": value.is_integer() and 2 <= value <= 8,
        "visible-watermark": 0 < value <= 1,
        "perturbation": 10 <= value <= 80,
    }[name]
    if not ok:
        raise ValueError(f"{name} strength is {strength!r}; expected {kind.strength}")
    return int(value) if name in ("jpeg", "downscale") else value


def parse_defense(text: str) -> Defense:
    """``"jpeg:50"``, ``"invisible-watermark:rivaGan"``, ``"none"`` -> :class:`Defense`."""
    name, _, strength = text.strip().partition(":")
    if name not in DEFENSES:
        raise ValueError(f"unknown defence {name!r} in {text!r}; allowed: {', '.join(DEFENSES)}")
    if name != "none" and not strength:
        raise ValueError(
            f"defence {name!r} needs a strength, NAME:STRENGTH, where it is "
            f"{DEFENSES[name].strength}"
        )
    return Defense(name, strength or None)


def sweep(channels: int = 3) -> list[Defense]:
    """The audit's default defences for a target with ``channels`` output channels
    (RivaGAN needs colour)."""
    defenses = [Defense("none")]
    for name, kind in DEFENSES.items():
        for strength in kind.sweep:
            if not (strength == "rivaGan" and channels != 3):
                defenses.append(Defense(name, strength))
    return defenses


class Signature(Protocol):
    """What an owner keeps to recognise a copy: ``score(x, y, z)`` of a suspect
    output ``z`` for input ``x`` (``y`` the target's output), found at ``>= threshold``."""

    kind: str
    threshold: float

    def score(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float: ...


@dataclass
class Published:
    """The pair as published under ``defense``, its cost, and its signature if any."""

    pair: Pair
    defense: Defense
    cost_psnr: float | None
    cost_ssim: float | None
    signature: Signature | None = None
    published_score: float | None = None  # the signature's score on the published output


def publish(pair: Pair, defense: Defense, seed: int = 0) -> Published:
    """Apply ``defense`` to the true ``pair``; ``seed`` drives noise and the watermark message."""
    from onepair import watermarks
    from onepair.targets import degrade, effects

    x, y, s = pair.input, pair.output, defense.strength
    signature: Signature | None = None
    if defense.name == "none":
        return Published(pair, defense, None, None)
    if defense.name == "jpeg":
        x, y = effects.jpeg(x, quality=int(s)), effects.jpeg(y, quality=int(s))  # type: ignore[arg-type]
    elif defense.name == "noise":
        rng = np.random.default_rng(seed)
        y = np.clip(y + rng.normal(0, float(s) / 255, y.shape), 0, 1).astype(np.float32)  # type: ignore[arg-type]
    elif defense.name == "downscale":
        rng = np.random.default_rng(seed)
        x, y = degrade.downscale(x, rng, int(s)), degrade.downscale(y, rng, int(s))  # type: ignore[arg-type]
    elif defense.name == "visible-watermark":
        y = watermarks.visible(y, float(s))  # type: ignore[arg-type]
    elif defense.name == "invisible-watermark":
        bits = watermarks.message(seed)
        y = watermarks.embed(y, str(s), bits)
        signature = watermarks.WatermarkSignature(str(s), tuple(bits))
    elif defense.name == "perturbation":
        from onepair.perturbation import perturb

        published, signature = perturb(pair, float(s))  # type: ignore[arg-type]
        x, y = published.input, published.output
    seen = _full_size(y, pair.output.shape) if defense.name == "downscale" else y
    return Published(
        Pair(x, y, pair.scale),
        defense,
        psnr(seen, pair.output),
        ssim(seen, pair.output),
        signature,
        signature.score(pair.input, pair.output, y) if signature is not None else None,
    )


def _full_size(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` up-scaled by bicubic interpolation to ``shape`` (H, W, C)."""
    from skimage.transform import resize

    return np.clip(resize(image, shape, order=3, anti_aliasing=False), 0, 1).astype(np.float32)


def evidence(
    published: Published,
    copies: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    controls: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
) -> dict | None:
    """Whether the signature of ``published`` shows in a copy's outputs.

    ``copies``: ``(x, y, z)`` on new images, ``z`` from the imitator fitted on
    the published pair; ``controls``: the same from an imitator fitted on the
    undefended pair (false positives). ``None`` when the defence leaves no signature.
    """
    signature = published.signature
    if signature is None:
        return None
    scores = [signature.score(x, y, z) for x, y, z in copies]
    control = [signature.score(x, y, z) for x, y, z in controls]
    score = float(np.mean(scores)) if scores else None
    return {
        "kind": signature.kind,
        "threshold": signature.threshold,
        "in_published": published.published_score,
        "score": score,
        "bit_accuracy": score if signature.kind == "watermark" else None,
        "correlation": score if signature.kind == "signature" else None,
        "rate": float(np.mean([v >= signature.threshold for v in scores])) if scores else None,
        "control_score": float(np.mean(control)) if control else None,
        "control_rate": float(np.mean([v >= signature.threshold for v in control]))
        if control
        else None,
        "images": len(scores),
    }
