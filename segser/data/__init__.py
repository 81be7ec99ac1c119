"""Data pipeline: audio -> segments -> patches -> batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segser.data.logmel.clip_patches import segment_patches

__all__ = ["segment_patches"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing a light submodule (e.g. splits) does not pull in torch and soxr.
    if name == "segment_patches":
        from segser.data.logmel.clip_patches import segment_patches

        return segment_patches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
