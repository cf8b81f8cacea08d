"""A trained imitator: its config and weights, saved as a self-describing run folder.

Run folder (DESIGN.md)::

    config.json          everything needed to rebuild the network (architecture and its
                         fields, channels, scale, fit settings, seed, onepair version)
    weights.safetensors  the network's state dict (no pickle anywhere)
    metrics.json         what the fit measured: held-out PSNR, its floor, steps, time
    history.csv          step, seconds, loss, lr, val_psnr over training

Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from onepair import dihedral
from onepair.models import ModelConfig, Network, build, config_from_dict, config_to_dict
from onepair.runschema import (
    MAX_CONFIG_BYTES,
    MAX_EXTRA_BYTES,
    MAX_NETWORK_VALUES,
    SAFETENSORS_DTYPES,
    check_run_config,
    check_weights_file,
    network_values,
    read_json,
)
from onepair.tiling import apply_network

FILES = ("config.json", "weights.safetensors", "metrics.json", "history.csv")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("onepair")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def fit_config_to_dict(config: Any) -> dict[str, Any]:
    """A FitConfig as JSON-ready dict (enums by value)."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in asdict(config).items()}


class Imitator:
    """A network that imitates a black box, with what it took to make it.

    >>> imitator = Imitator.load("runs/blur")          # doctest: +SKIP
    >>> restored = imitator.apply(load_image("x.png"))  # doctest: +SKIP
    """

    def __init__(
        self,
        network: Network,
        model: ModelConfig | None = None,
        fit: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, float]] | None = None,
    ):
        self.network = network.to(memory_format=torch.channels_last).eval()  # as build() makes
        self.model = model if model is not None else network.config
        self.fit = dict(fit or {})
        self.metrics = dict(metrics or {})
        self.history = list(history or [])

    @property
    def in_channels(self) -> int:
        return self.network.in_channels

    @property
    def out_channels(self) -> int:
        return self.network.out_channels

    @property
    def scale(self) -> int:
        return self.network.scale

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> Imitator:
        from onepair.fit import resolve_device

        self.network.to(resolve_device(str(device)))
        return self

    def apply(
        self,
        image: np.ndarray,
        tile: int | str | None = "auto",
        clip: bool = True,
        on_tile: Callable[[int, int], None] | None = None,
        ensemble: bool = False,
        precision: str = "auto",
    ) -> np.ndarray:
        """Imitate the black box on ``image`` (H, W, Cin) -> (s*H, s*W, Cout).

        Tiled with ``tile x tile`` input tiles (``None``: whole image; ``"auto"``:
        512 on the CPU, 2048 on a GPU); the result equals a whole-image pass.
        Clipped to [0, 1] unless ``clip=False``.
        ``on_tile(done, total)`` reports progress after each tile. ``ensemble``
        averages the imitation over the flips and rotations the fit found the
        target equivariant to (:attr:`equivariances`; none: a plain pass), at
        that many times the cost. ``precision`` is what the network's body computes in:
        ``"auto"`` (bfloat16 on a CPU with AMX tiles or AVX-512 bfloat16, else float32),
        ``"float32"`` or ``"bfloat16"`` (:func:`onepair.tiling.resolve_precision`).
        """

        def run(x: np.ndarray, clipped: bool = False) -> np.ndarray:
            return apply_network(self.network, x, tile, self.device, on_tile, clipped, precision)

        names = self.equivariances if ensemble else ["identity"]
        if names == ["identity"]:
            return run(image, clip)
        out = dihedral.ensemble(run, image, names)
        return np.clip(out, 0.0, 1.0, out=out) if clip else out

    @property
    def equivariances(self) -> list[str]:
        """The flips and rotations (:mod:`onepair.dihedral`) the fit trained with, found
        on the held-out blocks to leave the target unchanged; ``["identity"]`` if none."""
        return list(self.metrics.get("augment") or ["identity"])

    __call__ = apply

    # ------------------------------------------------------------------ run folder

    def config_dict(self) -> dict[str, Any]:
        return {
            "onepair_version": version(),
            "model": config_to_dict(self.model),
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "scale": self.scale,
            "fit": self.fit,
        }

    def save(self, folder: str | Path) -> Path:
        """Write the run folder (each file atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        _atomic(folder / "weights.safetensors", lambda p: save_file(state, str(p)))
        _atomic_text(folder / "metrics.json", json.dumps(self.metrics, indent=2) + "\n")
        _atomic_text(folder / "history.csv", _csv(self.history))
        _atomic_text(folder / "config.json", json.dumps(self.config_dict(), indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> Imitator:
        """Rebuild the network from ``config.json`` and load its weights.

        The folder is untrusted input: config.json is checked against
        :mod:`onepair.runschema` before anything is built, the network's size is
        counted on the ``meta`` device (no memory), and weights.safetensors is
        checked by size and header against that network before it is read.
        Raises FileNotFoundError for a missing config.json or weights file and
        ValueError, naming the file and the field, for anything else wrong.
        """
        from onepair.fit import resolve_device

        folder = Path(folder)
        for name in ("config.json", "weights.safetensors"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} is not an imitator run folder: {name} missing")
        model, channels, config = _read_config(folder / "config.json")
        weights = folder / "weights.safetensors"
        check_weights_file(weights, _expected_tensors(folder / "config.json", model, channels))
        try:
            state = load_file(str(weights))
        except Exception as error:  # safetensors raises its own error type for damaged files
            raise ValueError(f"{weights} is not a readable safetensors file: {error}") from None
        for key, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{weights}: tensor {key!r} holds NaN or infinite values")
        network = build(model, *channels)
        network.load_state_dict(state, strict=True)  # names, dtypes and shapes checked above
        metrics = (
            read_json(folder / "metrics.json", MAX_EXTRA_BYTES)
            if (folder / "metrics.json").is_file()
            else {}
        )
        if not isinstance(metrics, dict):
            raise ValueError(
                f"{folder / 'metrics.json'} holds {type(metrics).__name__}; expected an object"
            )
        history = _read_csv(folder / "history.csv")
        imitator = cls(network, model, config.get("fit"), metrics, history)
        return imitator.to(resolve_device(device))


def _read_config(path: Path) -> tuple[ModelConfig, tuple[int, int, int], dict[str, Any]]:
    """(model config, (in_channels, out_channels, scale), the whole dict) of a checked
    config.json; ValueError naming the file and field when anything is off."""
    config = read_json(path, MAX_CONFIG_BYTES)
    try:
        check_run_config(config)
        model = config_from_dict(config["model"])
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return model, (config["in_channels"], config["out_channels"], config["scale"]), config


def _expected_tensors(
    path: Path, model: ModelConfig, channels: tuple[int, int, int]
) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """name -> (safetensors dtype, shape, bytes) of the network that config.json at
    ``path`` describes, built on the meta device (nothing allocated); refused when
    it would hold more than MAX_NETWORK_VALUES values."""
    try:
        with torch.device("meta"):
            network = build(model, *channels)
    except ValueError as error:  # e.g. an identity skip between different channel counts
        raise ValueError(f"{path}: {error}") from None
    values = network_values(network)
    if values > MAX_NETWORK_VALUES:
        raise ValueError(
            f"{path}: its network would hold {values:,} values ({values * 4 / 2**30:.1f} GiB "
            f"as float32); expected at most {MAX_NETWORK_VALUES:,}"
        )
    return {
        key: (SAFETENSORS_DTYPES[str(t.dtype).removeprefix("torch.")], tuple(t.shape), t.nbytes)
        for key, t in network.state_dict().items()
    }


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_text(path: Path, text: str) -> None:
    _atomic(path, lambda p: p.write_text(text))


def _csv(rows: list[dict[str, float]]) -> str:
    columns = ["step", "seconds", "loss", "lr", "val_psnr"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _read_csv(path: Path) -> list[dict[str, float]]:
    """history.csv as rows of numbers; ValueError naming the file and line otherwise."""
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_EXTRA_BYTES:
        raise ValueError(
            f"{path} is {path.stat().st_size:,} bytes; expected at most {MAX_EXTRA_BYTES:,}"
        )
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                if None in row or None in row.values():
                    raise ValueError(f"line {line} has not as many fields as the header")
                rows.append({k: float(v) for k, v in row.items() if v != ""})
    except (ValueError, csv.Error) as error:
        raise ValueError(f"{path} is not a history of numbers: {error}") from None
    return rows
