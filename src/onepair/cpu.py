"""What this CPU computes fast: the probes behind apply's ``--precision auto``
(:func:`onepair.tiling.resolve_precision`)."""

from __future__ import annotations

import torch


def amx_available() -> bool:
    """Whether this CPU has AMX tiles (Intel Xeon from Sapphire Rapids on), where
    oneDNN runs bfloat16 convolutions on its matrix units."""
    return _probe("_is_amx_tile_supported")


def avx512_bf16_available() -> bool:
    """Whether this CPU has AVX-512 bfloat16 dot products (AMD from Zen 4 on, Intel
    Cooper Lake and Sapphire Rapids on), which oneDNN's bfloat16 convolutions use."""
    return _probe("_is_avx512_bf16_supported")


def bfloat16_units() -> bool:
    """Whether this CPU computes bfloat16 convolutions faster than float32: AMX tiles
    or AVX-512 bfloat16 instructions (docs/PERFORMANCE.md, "Apply in bfloat16")."""
    return amx_available() or avx512_bf16_available()


def _probe(name: str) -> bool:
    probe = getattr(torch.cpu, name, None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:  # pragma: no cover - a torch that cannot tell
        return False
