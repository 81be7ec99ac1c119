"""Compose the app's configs as `python -m segser.train/evaluate` would, for in-process tests."""

from __future__ import annotations

from pathlib import Path

from segser.setup.entry import CONF_DIR, composed

__all__ = ["composed", "options"]


def options(group: str) -> list[str]:
    """The shipped options of a config group (conf/<group>/*.yaml), sorted, for parametrize."""
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
