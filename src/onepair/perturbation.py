"""The anti-imitation perturbation: a learnable decoy hidden in the published output.

An imitator fitted on one pair learns whatever local function of the input
maps the published input to the published output. If the owner adds to the
published output a small *linear* function of the input, ``d = v * gray(x)``
(a ``k x k`` filter ``v``), any imitator with a linear path learns it exactly
(Theorem 1) and carries it to every new image: the copy is off by ``v * x'``.
What the owner pays is ``|v * x|`` on the example; what the copy loses is
``|v * x'|`` on the images the attacker cares about. The surrogate imitator is
the least-squares linear filter over the example's patches, and the filter
that maximises the copy's error per unit of the owner's cost is the top
generalised eigenvector of ``(C_new, C_example + ridge)``, where ``C`` are
patch second-moment matrices: of the example, and of proxy photographs
standing in for the attacker's new images (none of them is used to measure
the copy). Scaled so that the published output keeps ``floor_psnr`` dB to the
true one, the decoy doubles as a signature: the copy's deviation from the
target correlates with ``v * x'`` on new images, an imitator fitted elsewhere
does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from onepair.pairs import Pair

# Built-in photographs that stand in for the attacker's new images; disjoint from
# the audit's held-out images, which measure the copy.
PROXIES = ("brick", "gravel", "moon", "coins", "page", "hubble")


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=2)


def _moments(images: Sequence[np.ndarray], kernel: int, max_rows: int = 40_000) -> np.ndarray:
    """Mean of ``p p^T`` over the ``kernel x kernel`` patches of the gray ``images``."""
    total = np.zeros((kernel * kernel, kernel * kernel))
    rng = np.random.default_rng(0)
    for image in images:
        patches = sliding_window_view(_gray(image), (kernel, kernel)).reshape(-1, kernel * kernel)
        if len(patches) > max_rows:
            patches = patches[rng.choice(len(patches), max_rows, replace=False)]
        total += patches.T @ patches / len(patches)
    return total / len(images)


def design_decoy(
    example: np.ndarray,
    kernel: int = 9,
    proxies: Sequence[np.ndarray] | None = None,
    ridge: float = 0.001,
) -> np.ndarray:
    """The ``kernel x kernel`` filter (unit norm) whose response is largest on
    the proxies relative to the example ``(H, W, C)``.

    ``ridge`` (relative to the mean diagonal of the example's moment matrix)
    keeps the filter away from directions the example has almost no energy in,
    which a least-squares fit with its own ridge would not learn exactly.
    """
    from scipy.linalg import eigh

    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"decoy kernel is {kernel}; expected an odd size >= 1")
    if min(example.shape[:2]) < kernel:
        raise ValueError(
            f"the example is {example.shape[0]}x{example.shape[1]}; the decoy needs at least "
            f"{kernel}x{kernel}"
        )
    if proxies is None:
        from onepair.samples import sample

        proxies = [sample(name) for name in PROXIES]
    c_example = _moments([example], kernel)
    c_new = _moments(proxies, kernel)
    regular = c_example + ridge * np.trace(c_example) / len(c_example) * np.eye(len(c_example))
    _, vectors = eigh(c_new, regular)
    v = vectors[:, -1]
    v /= np.linalg.norm(v)
    return v.reshape(kernel, kernel) * np.sign(v[len(v) // 2] or 1.0)


def decoy_response(x: np.ndarray, decoy: np.ndarray, scale: int = 1) -> np.ndarray:
    """``decoy * gray(x)`` (correlation, reflect-padded), repeated to ``scale`` x
    the size: ``(s*H, s*W, 1)`` float64."""
    from scipy.ndimage import correlate

    response = correlate(_gray(x), decoy, mode="reflect")
    if scale > 1:
        response = np.repeat(np.repeat(response, scale, axis=0), scale, axis=1)
    return response[:, :, None]


@dataclass(frozen=True)
class DecoySignature:
    """What the owner keeps: the decoy filter. ``score`` is the correlation of a
    suspect image's deviation from the target with the decoy's response."""

    decoy: np.ndarray
    scale: int = 1
    kind: str = "signature"
    threshold: float = 0.5

    def score(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
        """Pearson correlation of ``z - y`` with ``decoy * x`` over all pixels and channels
        (0 when ``z == y``)."""
        deviation = (z.astype(np.float64) - y).ravel()
        response = np.broadcast_to(decoy_response(x, self.decoy, self.scale), z.shape).ravel()
        deviation, response = deviation - deviation.mean(), response - response.mean()
        norm = np.linalg.norm(deviation) * np.linalg.norm(response)
        return float(deviation @ response / norm) if norm > 0 else 0.0


def perturb(
    pair: Pair,
    floor_psnr: float,
    kernel: int = 9,
    proxies: Sequence[np.ndarray] | None = None,
) -> tuple[Pair, DecoySignature]:
    """The pair with the decoy added to its output at ``floor_psnr`` dB (the
    published output's PSNR to the true one, before clipping to [0, 1], which
    only raises it)."""
    if not 10.0 <= floor_psnr <= 80.0:
        raise ValueError(
            f"perturbation floor is {floor_psnr} dB; expected 10..80 (the published output's "
            "PSNR to the true output)"
        )
    decoy = design_decoy(pair.input, kernel, proxies)
    response = decoy_response(pair.input, decoy, pair.scale)
    power = float(np.mean(response**2))
    if power == 0.0:
        raise ValueError("the example is flat: a decoy has nothing to respond to")
    amplitude = np.sqrt(10.0 ** (-floor_psnr / 10.0) / power)
    output = np.clip(pair.output + amplitude * response, 0.0, 1.0).astype(np.float32)
    return Pair(pair.input, output, pair.scale), DecoySignature(decoy, pair.scale)
