"""Shared fixtures: small awkward-sized images and a tiny, fast imitator recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onepair.fit import FitConfig
from onepair.models import UNetConfig

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def float32_apply(monkeypatch):
    """Apply's ``precision="auto"`` means float32 in tests on every CPU: on one with AMX
    tiles or AVX-512 bfloat16 it would mean bfloat16, and the tests of tiling and
    streaming compare with float32 whole-image passes to 1e-5. Tests of bfloat16 ask for
    it (test_tiling.py)."""
    from onepair import cpu

    monkeypatch.setattr(cpu, "bfloat16_units", lambda: False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def photo() -> np.ndarray:
    """A 96x80 RGB crop of a built-in photograph (real image statistics)."""
    from onepair.samples import sample

    return sample("astronaut")[100:196, 180:260].copy()


TINY_MODEL = UNetConfig(depth=2, width=8, linear_kernel=7)
TINY_FIT = FitConfig(
    steps=60, batch_size=4, crop=32, val_every=10, checkpoint_every=20, log_every=5, device="cpu"
)


def randomise_path(network) -> None:
    """Random filters in ``network``'s linear path (one filter, an adaptive path, or two
    in a row), with knots where random images' strengths lie."""
    for name, tensor in network.linear.named_buffers():
        if name.endswith("weight"):
            torch.nn.init.normal_(tensor, std=0.05)
        elif name.endswith("knots"):
            tensor.copy_(torch.linspace(-4.5, -2.5, len(tensor)))


def whole(network, image: np.ndarray) -> np.ndarray:
    """``network`` on a whole (H, W, C) image in one pass, borders reflected as apply does."""
    from onepair.images import from_tensor, to_tensor

    margin = network.receptive_field().margin
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    with torch.no_grad():
        y = from_tensor(network(to_tensor(padded)))
    s = network.scale
    return y[s * margin : y.shape[0] - s * margin, s * margin : y.shape[1] - s * margin]
