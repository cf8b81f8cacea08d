"""``pairs:DIR`` -- a target whose outputs were computed beforehand.

A vendor publishes inputs and the outputs of its model; onepair evaluates an
imitator against them without reaching the model. The folder holds::

    DIR/inputs/NAME.png     (any image type onepair reads)
    DIR/outputs/NAME.png    (same stem; the suffix may differ)

Asked for an image, the target finds the input with exactly the same pixels
(compared at 16-bit precision) and returns the output of the same name;
:meth:`PairsFolder.lookup` finds one by name. Files must lie inside ``DIR``:
a symbolic link (or a name) that leads outside it is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from onepair.images import SUFFIXES, as_image, load_image


def digest(image: np.ndarray) -> str:
    """A hash of an image's pixels at 16-bit precision, with its shape."""
    image = as_image(image)
    quantized = np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype("<u2")
    return hashlib.sha256(repr(image.shape).encode() + quantized.tobytes()).hexdigest()


class PairsFolder:
    """Inputs and outputs by name; callable as a target."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(
                f"pairs: {self.root} is not a folder; expected DIR with inputs/, outputs/"
            )
        base = self.root.resolve()
        self.inputs = _images(self.root / "inputs", base)
        self.outputs = _images(self.root / "outputs", base)
        unmatched = sorted(set(self.inputs) - set(self.outputs))
        if unmatched:
            raise ValueError(
                f"pairs: {len(unmatched)} input(s) in {self.root / 'inputs'} have no output of the "
                f"same name in {self.root / 'outputs'}: {', '.join(unmatched[:5])}"
            )
        self._by_digest: dict[str, str] | None = None

    def lookup(self, name: str) -> np.ndarray:
        """The output stored for the input named ``name`` (a stem or a file name)."""
        stem = Path(name).stem
        if stem not in self.outputs:
            raise ValueError(
                f"pairs: no output named {stem!r} in {self.root / 'outputs'}; "
                f"it has {len(self.outputs)}: {', '.join(sorted(self.outputs)[:5])}"
            )
        return load_image(self.outputs[stem])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self._by_digest is None:
            self._by_digest = {digest(load_image(p)): stem for stem, p in self.inputs.items()}
        stem = self._by_digest.get(digest(image))
        if stem is None:
            raise ValueError(
                f"pairs: this {image.shape[0]}x{image.shape[1]} image is none of the "
                f"{len(self.inputs)} inputs in {self.root / 'inputs'}; a precomputed target "
                f"answers only for its own inputs"
            )
        return self.lookup(stem)


def _images(folder: Path, base: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"pairs: {folder} is missing; expected DIR/inputs and DIR/outputs")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or path.name.startswith("."):
            continue
        resolved = path.resolve()
        if not resolved.is_relative_to(base):
            raise ValueError(f"pairs: {path} leads outside {base} (to {resolved}); refused")
        if path.stem in found:
            raise ValueError(f"pairs: two files named {path.stem!r} in {folder}")
        found[path.stem] = path
    if not found:
        raise ValueError(f"pairs: {folder} holds no images ({', '.join(SUFFIXES)})")
    return found


def open_target(location: str) -> PairsFolder:
    """The folder at ``location`` as a target."""
    return PairsFolder(location)
