"""Stand-in modules for imports that third-party packages make but onepair's paths never use.

spandrel imports ``torchvision.transforms.functional`` for two architectures
(LaMa, RestoreFormer); ST-LPIPS imports torchvision, IPython and
torchsummary at top level without using them on its AlexNet path. Where such
a module does not import (torchvision's PyPI builds need the exact torch they
were built for), :func:`stand_ins` puts an empty package in ``sys.modules``
for the duration of one import only, then removes it: any later ``import``
fails as before, and a name taken from a stand-in raises a clear error the
moment it is used.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any


def imports(name: str) -> bool:
    """Whether ``import name`` works (a module built for another torch fails in many ways)."""
    if importlib.util.find_spec(name.split(".")[0]) is None:
        return False
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


class Missing:
    """A name taken from a stand-in module; calling or using it raises a clear error."""

    def __init__(self, name: str, needed_by: str) -> None:
        self._name, self._needed_by = name, needed_by

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{self._name} is needed by {self._needed_by}, but it does not import here; "
            f"install a version of its package that matches your torch to use it"
        )

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return self()


@contextlib.contextmanager
def stand_ins(names: Iterable[str], needed_by: str) -> Iterator[list[str]]:
    """Within the block, every module of ``names`` that does not import is a stand-in.

    Yields the names that got a stand-in. Submodules (``a.b.c``) are listed
    explicitly; each stand-in is a package, so they resolve through ``sys.modules``.
    """
    missing = [name for name in names if not imports(name)]
    saved = {name: sys.modules.get(name) for name in missing}
    for name in missing:
        module = types.ModuleType(name, f"stand-in installed by onepair for {needed_by}")

        def attribute(item: str, _module: str = name) -> Missing:
            if item.startswith("__"):
                raise AttributeError(item)
            return Missing(f"{_module}.{item}", needed_by)

        module.__getattr__ = attribute  # type: ignore[method-assign]  # PEP 562
        module.__path__ = []  # a package: submodules resolve through sys.modules
        sys.modules[name] = module
    try:
        yield missing
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
