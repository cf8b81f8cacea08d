"""``py:package.module:function`` -- a target that is a Python function.

The function takes and returns an image in the convention (float32
``(H, W, C)`` in [0, 1]); onepair checks what it returns. Options after ``#``
are passed to it as keyword arguments::

    py:skimage.filters:gaussian#sigma=2        (any importable callable)

In the Python API any callable can be passed to ``load_target`` directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np


def open_target(location: str, **options: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Import ``package.module:function`` and bind ``options`` as keyword arguments."""
    module_name, colon, attribute = location.partition(":")
    if not colon or not module_name.strip() or not attribute.strip():
        raise ValueError(
            f"py: target is {location!r}; expected 'package.module:function', "
            f"e.g. 'py:skimage.filters:gaussian'"
        )
    try:
        module = importlib.import_module(module_name.strip())
    except ImportError as error:
        raise ValueError(
            f"py: target {location!r}: cannot import {module_name!r} ({error})"
        ) from error
    function: Any = module
    for name in attribute.strip().split("."):
        if not hasattr(function, name):
            raise ValueError(f"py: target {location!r}: {module_name!r} has no attribute {name!r}")
        function = getattr(function, name)
    if not callable(function):
        raise ValueError(f"py: target {location!r} is a {type(function).__name__}, not callable")

    def call(image: np.ndarray) -> np.ndarray:
        return function(image, **options)

    call.__name__ = getattr(function, "__name__", attribute)
    return call
