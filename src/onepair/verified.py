"""Crash-safe checkpoint files: digests, a previous generation, verified loading.

A checkpoint is one ``checkpoint.safetensors``: tensors, and JSON metadata
carried with SHA-256 digests of the tensors and of the JSON. A new one is
written to a temporary name and fsynced, the current one is renamed to
``checkpoint.prev.safetensors``, then the new one is renamed into place, so at
every instant at least one complete checkpoint is on disk. Reading verifies
the newest and, if it is truncated, unreadable or fails its digests, warns on
the ``onepair`` logger and falls back to the previous one. The fit's
checkpoints (:mod:`onepair.checkpoint`) and the teachers' share this format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize

NAME = "checkpoint.safetensors"
PREV = "checkpoint.prev.safetensors"

log = logging.getLogger("onepair")


class CorruptCheckpoint(ValueError):
    """A checkpoint file that is truncated, unreadable or fails its digests."""


def write_verified(out: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Install a checkpoint of ``tensors`` (CPU, contiguous) and JSON ``meta`` in ``out``.

    Write ``.checkpoint.safetensors.tmpPID`` and fsync it; rename the current
    checkpoint to ``checkpoint.prev.safetensors``; rename the new one into place.
    """
    text = json.dumps(meta)
    metadata = {
        "onepair": text,
        "onepair_sha256": _sha256(text),
        "tensors_sha256": _digest(tensors),
    }
    data = serialize(tensors, metadata=metadata)  # (safetensors' save_file leaves its own .tmp*)
    tmp, newest = out / f".{NAME}.tmp{os.getpid()}", out / NAME
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if newest.is_file():
        os.replace(newest, out / PREV)
    os.replace(tmp, newest)
    _fsync_folder(out)


def read_verified(out: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """(JSON metadata, tensors) of the newest checkpoint in ``out`` that verifies.

    ``None`` if there is none. A corrupted newest one is reported as a warning
    and replaced by the previous one; ValueError if no checkpoint verifies.
    """
    newest, prev = out / NAME, out / PREV
    failures = []
    for path in (newest, prev):
        if not path.is_file():
            continue
        try:
            meta, tensors = verify(path)
        except CorruptCheckpoint as error:
            failures.append(f"{path.name}: {error}")
            fallback = f"; falling back to {prev}" if path == newest and prev.is_file() else ""
            log.warning("checkpoint %s is corrupted: %s%s", path, error, fallback)
            continue
        if path == prev:  # the folder holds a verified newest again (a bad one is dropped)
            if not failures:
                log.info("%s is missing (killed between two renames); using %s", newest, prev)
            os.replace(prev, newest)
            _fsync_folder(out)
        return meta, tensors
    if failures:
        raise ValueError(
            f"no usable checkpoint in {out}: {'; '.join(failures)}; delete "
            f"{NAME} and {PREV} to start over"
        )
    return None


def verify(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON metadata, tensors) of one checkpoint file; :class:`CorruptCheckpoint` if bad."""
    try:
        with safe_open(str(path), "pt") as f:
            stored = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CorruptCheckpoint(f"unreadable ({error})") from error
    text = stored.get("onepair")
    if text is None or "onepair_sha256" not in stored or "tensors_sha256" not in stored:
        raise CorruptCheckpoint(f"no onepair metadata with digests (keys {sorted(stored)})")
    if _sha256(text) != stored["onepair_sha256"]:
        raise CorruptCheckpoint("metadata SHA-256 mismatch")
    digest = _digest(tensors)
    if digest != stored["tensors_sha256"]:
        raise CorruptCheckpoint(
            f"tensor SHA-256 mismatch (stored {stored['tensors_sha256'][:12]}..., "
            f"computed {digest[:12]}...)"
        )
    return json.loads(text), tensors


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _fsync_folder(out: Path) -> None:
    """Make the renames durable (POSIX; elsewhere folders cannot be opened)."""
    if os.name == "posix":
        fd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
