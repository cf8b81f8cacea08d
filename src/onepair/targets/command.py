"""``cmd:PROGRAM ARGS {input} {output}`` -- a target that is an external program.

The command line is split like a shell would (``shlex``) but run WITHOUT a
shell, so nothing in it is interpreted: no pipes, globbing or variable
expansion. ``{input}`` is replaced by a temporary image file holding the
query and ``{output}`` by the path where the program must write its answer;
both live in a private temporary folder removed afterwards. The file type
follows the ``suffix`` option (``.png`` by default; 16-bit so nothing is
lost; ``.tif`` for TIFF). A run that exceeds ``timeout`` seconds is killed; a
non-zero exit status raises an error quoting the tail of the program's
stderr. Example::

    cmd:python denoise.py --strength 3 {input} {output}#timeout=120,suffix=.tif
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from onepair.images import ImageError, load_image, save_image

SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def open_target(
    location: str, timeout: float = 600.0, suffix: str = ".png", bit_depth: int = 16
) -> Callable[[np.ndarray], np.ndarray]:
    """Check the command line once; return a function that runs it per image."""
    try:
        argv = shlex.split(location)
    except ValueError as error:
        raise ValueError(f"cmd: target {location!r} cannot be split: {error}") from error
    if not argv:
        raise ValueError("cmd: target is empty; expected 'cmd:PROGRAM ARGS {input} {output}'")
    missing = [p for p in ("{input}", "{output}") if not any(p in a for a in argv)]
    if missing:
        raise ValueError(
            f"cmd: target {location!r} lacks {' and '.join(missing)}; expected "
            f"'cmd:PROGRAM ARGS {{input}} {{output}}'"
        )
    if shutil.which(argv[0]) is None:
        raise ValueError(f"cmd: target {location!r}: program {argv[0]!r} not found on PATH")
    if suffix not in SUFFIXES:
        raise ValueError(f"cmd: suffix is {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if bit_depth not in (8, 16, 32) or (bit_depth == 32 and suffix == ".png"):
        raise ValueError(
            f"cmd: bit_depth is {bit_depth} for {suffix}; expected 8 or 16 (PNG), 8/16/32 (TIFF)"
        )
    if timeout <= 0:
        raise ValueError(f"cmd: timeout is {timeout}; expected seconds > 0")

    def run(image: np.ndarray) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="onepair-cmd-") as folder:
            source = Path(folder) / f"input{suffix}"
            target = Path(folder) / f"output{suffix}"
            save_image(source, image, bit_depth=bit_depth if suffix != ".npy" else 32)
            args = [
                a.replace("{input}", str(source)).replace("{output}", str(target)) for a in argv
            ]
            returncode, stderr = _run(args, timeout)
            if returncode is None:
                raise RuntimeError(
                    f"cmd: {argv[0]} ran longer than {timeout:g} s and was killed "
                    f"(with every process it started)"
                )
            if returncode != 0:
                raise RuntimeError(
                    f"cmd: {argv[0]} exited with status {returncode}; stderr ends: {_tail(stderr)}"
                )
            try:
                return load_image(target)
            except ImageError as error:
                raise RuntimeError(
                    f"cmd: {argv[0]} exited normally but its output is unusable: {error}; "
                    f"stderr ends: {_tail(stderr)}"
                ) from error

    run.__name__ = Path(argv[0]).name
    return run


def _run(args: list[str], timeout: float) -> tuple[int | None, bytes]:
    """Run without a shell in a new process group; on timeout kill the whole group.

    Returns (exit status, stderr), the status None when it was killed.
    """
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: children die with it
        shell=False,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
        return process.returncode, stderr
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None, b""
    finally:
        if process.poll() is None:  # interrupted (Ctrl-C): leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(stderr: bytes, limit: int = 800) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    return repr(text[-limit:]) if text else "(nothing)"
