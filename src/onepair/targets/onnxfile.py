"""``onnx:FILE`` -- an ONNX image-to-image model run by onnxruntime.

The model takes one 4-D float tensor, ``(1, C, H, W)`` (``layout=nchw``) or
``(1, H, W, C)`` (``layout=nhwc``), with values 0..``max_value`` (1 or 255),
and returns one tensor in the same layout, of the same size or an integer
multiple of it (super-resolution). onepair reflect-pads H and W at the bottom
and right up to a ``multiple`` of the model's down-sampling factor, runs it,
crops the output back (``scale`` x the input size) and, with ``clip``, clips
it to [0, 1]::

    onnx:model.onnx                                  (NCHW, values 0..1)
    onnx:maxim.onnx#layout=nhwc,multiple=64          (MAXIM, see shared/targets)
    onnx:model.onnx#max-value=255,device=cpu,threads=2

Creating a session can take minutes for big graphs (MAXIM: 1-3 min), so
each session is created once per process and reused for the same file
(resolved path, size and modification time), device and thread count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from onepair.images import shape_str

LAYOUTS = ("nchw", "nhwc")
DEVICES = ("auto", "cpu", "cuda")

# (resolved path, size, mtime_ns, provider, threads) -> onnxruntime.InferenceSession
_SESSIONS: dict[tuple[str, int, int, str, int], Any] = {}
_LOCK = threading.Lock()


def open_target(
    path: str,
    layout: str = "nchw",
    max_value: float = 1.0,
    multiple: int = 1,
    clip: bool = True,
    device: str = "auto",
    threads: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """Load the ONNX model at ``path``; returns ``f(image) -> image``.

    ``layout``: ``nchw`` or ``nhwc``; ``max_value``: the model's value for
    white (1 or 255); ``multiple``: H and W are reflect-padded up to a
    multiple of it; ``clip``: clip the output to [0, 1]; ``device``:
    ``auto`` (CUDA when onnxruntime has it, else CPU), ``cpu`` or ``cuda``;
    ``threads``: onnxruntime's intra-op threads (0: its default).
    Raises ValueError for a missing or unreadable file, bad options, and
    (when called) an image whose channel count the model does not take.
    """
    layout = layout.lower()
    if layout not in LAYOUTS:
        raise ValueError(f"onnx: layout is {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if max_value <= 0:
        raise ValueError(f"onnx: max_value is {max_value}; expected 1 (values 0..1) or 255")
    if int(multiple) != multiple or multiple < 1:
        raise ValueError(f"onnx: multiple is {multiple}; expected a positive integer")
    if int(threads) != threads or threads < 0:
        raise ValueError(f"onnx: threads is {threads}; expected 0 (default) or more")
    session = _session(path, device.lower(), int(threads))
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        names = ", ".join(f"{i.name} {i.shape}" for i in inputs)
        raise ValueError(f"onnx: {path} takes {len(inputs)} inputs ({names}); expected one image")
    spec = inputs[0]
    if len(spec.shape) != 4:
        raise ValueError(
            f"onnx: {path}: input {spec.name!r} has shape {spec.shape}; expected a 4-D image "
            f"tensor (1, C, H, W) or (1, H, W, C)"
        )
    if spec.type not in ("tensor(float)", "tensor(float16)"):
        raise ValueError(f"onnx: {path}: input {spec.name!r} is {spec.type}; expected float")
    dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
    axis = 1 if layout == "nchw" else 3
    expected = spec.shape[axis] if isinstance(spec.shape[axis], int) else None
    other = spec.shape[4 - axis] if isinstance(spec.shape[4 - axis], int) else None
    output_name = outputs[0].name
    step = int(multiple)

    def run(image: np.ndarray) -> np.ndarray:
        h, w, c = image.shape
        if expected is not None and c != expected:
            flipped = LAYOUTS[axis == 1]
            hint = f"; is its layout {flipped}? add #layout={flipped}" if other == c else ""
            raise ValueError(
                f"onnx: {path} expects {expected}-channel images (input {spec.name!r} has shape "
                f"{spec.shape}, layout {layout}) but the image is {shape_str(image)}{hint}"
            )
        ph, pw = -h % step, -w % step
        padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else image
        x = padded * np.float32(max_value)
        x = x.transpose(2, 0, 1)[None] if layout == "nchw" else x[None]
        (y,) = session.run([output_name], {spec.name: np.ascontiguousarray(x, dtype=dtype)})
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 4 or y.shape[0] != 1:
            raise ValueError(
                f"onnx: {path} returned shape {y.shape}; expected (1, C, H, W) or (1, H, W, C)"
            )
        y = y[0].transpose(1, 2, 0) if layout == "nchw" else y[0]  # (s*H', s*W', Cout)
        scale = y.shape[0] // padded.shape[0]
        if scale < 1 or y.shape[:2] != (scale * padded.shape[0], scale * padded.shape[1]):
            raise ValueError(
                f"onnx: {path} turned a {shape_str(padded)} input into {shape_str(y)}; expected "
                f"the same size or an integer multiple (is layout={layout} right?)"
            )
        y = y[: scale * h, : scale * w] / np.float32(max_value)
        return np.clip(y, 0.0, 1.0) if clip else np.ascontiguousarray(y)

    run.__name__ = f"onnx:{Path(path).name}"
    return run


def _session(path: str, device: str, threads: int) -> Any:
    """The process-wide InferenceSession for this file, device and thread count."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ValueError(
            "onnx: targets need onnxruntime; install it with pip install 'onepair[zoo]'"
        ) from error
    if device not in DEVICES:
        raise ValueError(f"onnx: device is {device!r}; expected one of {', '.join(DEVICES)}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"onnx: model file {path!r} does not exist (looked at {file.resolve()})")
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda:
        raise ValueError(
            f"onnx: device=cuda but this onnxruntime has only {', '.join(available)}; "
            "install onnxruntime-gpu or use device=cpu"
        )
    provider = "CUDAExecutionProvider" if device != "cpu" and cuda else "CPUExecutionProvider"
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, provider, threads)
    with _LOCK:
        if key not in _SESSIONS:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3  # errors only
            providers = list(dict.fromkeys([provider, "CPUExecutionProvider"]))
            try:
                _SESSIONS[key] = ort.InferenceSession(
                    str(file), sess_options=options, providers=providers
                )
            except Exception as error:  # onnxruntime raises several private types
                raise ValueError(
                    f"onnx: {path} is not an ONNX model onnxruntime can load: {error}"
                ) from error
        return _SESSIONS[key]
