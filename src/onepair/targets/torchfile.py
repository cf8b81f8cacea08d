"""``torch:FILE`` -- PyTorch weights whose architecture spandrel detects.

``FILE`` is a ``.pth``/``.pt``/``.ckpt`` state dict or a ``.safetensors``
file; spandrel (https://github.com/chaiNNer-org/spandrel) recognises the
architecture and its hyper-parameters from the tensor names and shapes
(ESRGAN, Real-ESRGAN Compact, SwinIR, Swin2SR, HAT, SCUNet, Restormer-like,
DRUNet, NAFNet, DnCNN and about 40 more)::

    torch:RealESRGAN_x4plus.pth
    torch:scunet_color_real_psnr.pth#device=cuda,tile=512,half=true

Safety: a ``.pth`` file is a pickle, and unpickling can run code. onepair
never lets spandrel open files (its loader uses a restricted unpickler, not
``weights_only``, and hands ``.pt`` files to ``torch.jit.load``); it reads
them itself with ``torch.load(weights_only=True)`` -- tensors and plain
containers only, TorchScript archives refused -- or with safetensors, and
passes the state dict to spandrel's ``ModelLoader.load_from_state_dict``.

torchvision: spandrel's package ``__init__`` imports every architecture, and
two of them (LaMa inpainting, RestoreFormer face restoration) import
``torchvision.transforms.functional`` at module level, although nothing runs
it until such a model is called. Importing single architecture modules does
not help (the package ``__init__`` runs first). So where torchvision does not
import, :func:`import_spandrel` puts a stand-in ``torchvision`` package into
``sys.modules`` for the duration of ``import spandrel`` only, then removes
it: every name taken from it is a placeholder that raises a clear error if
LaMa or RestoreFormer ever uses it, and any later ``import torchvision``
fails as before. With a working torchvision, spandrel is imported unchanged.

Size requirements (``multiple_of``, ``minimum``, ``square``) are met the way
spandrel's descriptor call does it: pad bottom/right by reflection
(replication beyond what reflection allows), run, crop the output back to
``scale`` x the input size; outputs are clamped to [0, 1].
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onepair.images import from_tensor, shape_str, to_tensor
from onepair.standins import stand_ins

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
_STAND_INS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def open_target(
    path: str, device: str = "auto", tile: int = 0, half: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """Load the weights at ``path`` with spandrel; returns ``f(image) -> image``.

    ``device``: a torch device (``cpu``, ``cuda``, ``cuda:1``, ``auto``);
    ``tile``: run square tiles of this side overlapping by up to 32 pixels
    (0: the whole image at once; tiles bound memory, but models whose
    receptive field exceeds the overlap give slightly different borders);
    ``half``: float16 weights and activations (where the model supports it).
    The image's channel count must match the model's input channels.
    """
    if int(tile) != tile or tile < 0:
        raise ValueError(f"torch: tile is {tile}; expected 0 (whole image) or a positive size")
    descriptor = load_model(path, device=device, half=half)
    cin = descriptor.input_channels
    dtype = torch.float16 if half else torch.float32
    side = 0 if not tile else max(int(tile), 2 * descriptor.size_requirements.multiple_of, 16)
    overlap = min(32, side // 4)

    @torch.inference_mode()
    def run(image: np.ndarray) -> np.ndarray:
        if image.shape[2] != cin:
            raise ValueError(
                f"torch: {path} ({descriptor.architecture.name}) takes {cin}-channel images; "
                f"the image is {shape_str(image)}"
            )
        x = to_tensor(image, descriptor.device).to(dtype)  # (1, Cin, H, W)
        y = _tiled(descriptor, x, side, overlap) if side else descriptor(x)  # (1, Cout, sH, sW)
        return from_tensor(y)

    run.__name__ = f"torch:{Path(path).name}"
    return run


def load_model(path: str, device: str = "cpu", half: bool = False) -> Any:
    """Read ``path`` safely and build its spandrel ``ImageModelDescriptor`` in eval mode."""
    spandrel = import_spandrel()
    state = read_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        keys = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(state.items())[:5])
        known = ", ".join(a.architecture.name for a in spandrel.MAIN_REGISTRY.architectures())
        raise ValueError(
            f"torch: spandrel recognises no architecture in {path} ({len(state)} tensors; "
            f"first: {keys}); it knows {known}"
        ) from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(
            f"torch: {path} is a {descriptor.architecture.name} model "
            f"({type(descriptor).__name__}); only image-to-image models can be targets"
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if half and not descriptor.supports_half:
        raise ValueError(
            f"torch: {descriptor.architecture.name} does not support half=true; leave it off"
        )
    try:
        descriptor.to(torch.device(device))
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"torch: cannot use device {device!r}: {error}") from error
    if half:
        descriptor.half()
    return descriptor.eval()


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, read without running any code from it.

    ``.safetensors`` through safetensors; ``.pth``/``.pt``/``.ckpt`` through
    ``torch.load(weights_only=True)``, which refuses pickled objects other
    than tensors and plain containers. Checkpoint wrappers (``state_dict``,
    ``params_ema``, ``module.`` prefixes, ...) are removed as spandrel does.
    """
    file = Path(path).expanduser()
    if file.suffix.lower() not in SUFFIXES:
        raise ValueError(
            f"torch: {path} has suffix {file.suffix!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if not file.is_file():
        raise ValueError(
            f"torch: weights file {path!r} does not exist (looked at {file.resolve()})"
        )
    try:
        if file.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(file), device="cpu")
        else:
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and safetensors errors all mean "not loadable"
        raise ValueError(
            f"torch: cannot read {path} as plain weights ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); onepair loads only tensors "
            "(torch.load weights_only=True, or safetensors): pickled Python objects and "
            "TorchScript archives are refused"
        ) from error
    if not isinstance(state, dict):
        raise ValueError(f"torch: {path} holds a {type(state).__name__}; expected a state dict")
    state = import_spandrel().canonicalize_state_dict(state)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"torch: {path} holds no tensors (keys: {', '.join(list(state)[:5])})")
    return tensors


def import_spandrel() -> types.ModuleType:
    """``import spandrel``, with a stand-in torchvision where the real one does not import."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    if importlib.util.find_spec("spandrel") is None:
        raise ValueError(
            "torch: targets need spandrel: pip install spandrel (where torchvision cannot be "
            "installed beside your torch: pip install --no-deps spandrel einops, as the "
            "Makefile does)"
        )
    with stand_ins(_STAND_INS, "a spandrel architecture (LaMa or RestoreFormer)"):
        return importlib.import_module("spandrel")


def _tiled(descriptor: Any, x: torch.Tensor, side: int, overlap: int) -> torch.Tensor:
    """Run ``descriptor`` on overlapping ``side`` x ``side`` tiles, keeping each tile's centre.

    Tile origins are multiples of the model's ``multiple_of``, so a U-Net-like
    model sees every tile in the same down-sampling phase as the whole image.
    """
    _, _, h, w = x.shape
    s = descriptor.scale
    multiple = max(1, int(descriptor.size_requirements.multiple_of))
    out = x.new_empty(1, descriptor.output_channels, s * h, s * w)
    for top in _starts(h, side, overlap, multiple):
        bottom = min(top + side, h)
        keep_top, keep_bottom = (
            top + (overlap if top else 0),
            bottom - (overlap if bottom < h else 0),
        )
        for left in _starts(w, side, overlap, multiple):
            right = min(left + side, w)
            keep_left = left + (overlap if left else 0)
            keep_right = right - (overlap if right < w else 0)
            y = descriptor(x[..., top:bottom, left:right])  # (1, Cout, s*th, s*tw)
            out[..., s * keep_top : s * keep_bottom, s * keep_left : s * keep_right] = y[
                ...,
                s * (keep_top - top) : s * (keep_bottom - top),
                s * (keep_left - left) : s * (keep_right - left),
            ]
    return out


def _starts(length: int, size: int, overlap: int, multiple: int = 1) -> list[int]:
    """Tile origins: steps of ``size - 2*overlap`` (rounded down to ``multiple``) until a
    tile reaches the end."""
    step = max(multiple, (size - 2 * overlap) // multiple * multiple)
    starts = [0]
    while starts[-1] + size < length:
        starts.append(starts[-1] + step)
    return starts
