"""Compose the app's configs as `python -m segser.train/evaluate` would, for in-process tests."""

from __future__ import annotations

from segser.entry import composed

__all__ = ["composed"]
