"""How to train: :class:`FitConfig`, its enums, and the learning-rate schedule.

:mod:`onepair.fit` runs the loop these settings describe and re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch


class Loss(str, Enum):
    L2 = "l2"
    L1 = "l1"


class Augment(str, Enum):
    """Flips and rotations of the example as extra training pairs (:mod:`onepair.dihedral`)."""

    NONE = "none"
    ALL = "all"  # all eight, assumed without a test
    AUTO = "auto"  # those the held-out blocks show the target equivariant to
    TEST = "test"  # found as for auto, for apply --ensemble only: nothing trained or solved on them


class Schedule(str, Enum):
    COSINE = "cosine"  # linear warm-up, cosine decay to lr * lr_min
    MULTISTEP = "multistep"  # x0.1 at 60% and 90% of the budget (paper prototype)


@dataclass(frozen=True)
class FitConfig:
    """How to train. Budget: ``steps``, and ``seconds`` of wall time if set."""

    steps: int = 4000
    seconds: float | None = None
    batch_size: int = 4
    crop: int = 64
    lr: float = 2e-3
    lr_min: float = 0.02
    warmup: float = 0.03
    schedule: Schedule = Schedule.COSINE
    loss: Loss = Loss.L2
    augment: Augment = Augment.NONE
    augment_check: float = 0.15
    equivariance_tolerance: float = 0.1
    holdout: float = 0.125  # one block in round(1 / holdout) held out, at most 0.5 (validation.py)
    holdout_block: int = 32  # their side in input pixels (smaller on small examples)
    val_every: int = 50
    patience: int = 0
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", Schedule(self.schedule))
        object.__setattr__(self, "loss", Loss(self.loss))
        object.__setattr__(self, "augment", Augment(self.augment))
        for name in ("augment_check", "equivariance_tolerance"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"FitConfig.{name} is {getattr(self, name)}; expected in [0, 1)")
        for name in (
            "steps",
            "batch_size",
            "crop",
            "holdout_block",
            "val_every",
            "checkpoint_every",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"FitConfig.{name} is {getattr(self, name)}; expected >= 1")
        if not 0.0 <= self.holdout <= 0.5:
            raise ValueError(
                f"FitConfig.holdout is {self.holdout}; expected a fraction in [0, 0.5] "
                "(one block in round(1 / holdout) is held out)"
            )
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"FitConfig.seconds is {self.seconds}; expected > 0 or None")
        if self.lr <= 0:
            raise ValueError(f"FitConfig.lr is {self.lr}; expected > 0")


def lr_at(progress: float, config: FitConfig) -> float:
    """Learning rate at ``progress`` in [0, 1] of the budget (a pure function)."""
    p = min(max(progress, 0.0), 1.0)
    if config.schedule is Schedule.MULTISTEP:
        return config.lr * (0.1 if p >= 0.6 else 1.0) * (0.1 if p >= 0.9 else 1.0)
    if p < config.warmup:
        return config.lr * (p / config.warmup)
    t = (p - config.warmup) / max(1.0 - config.warmup, 1e-12)
    floor = config.lr * config.lr_min
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else as torch names it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device is {device!r}; expected auto, cpu, cuda or cuda:N (as torch names devices)"
        ) from None
