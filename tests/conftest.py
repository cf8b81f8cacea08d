"""Shared fixtures: small awkward-sized images and a tiny, fast imitator recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onepair.fit import FitConfig
from onepair.models import UNetConfig

torch.set_num_threads(1)


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
