"""Compose the app's configs as `python -m segser.train/evaluate` would, for in-process tests."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from segser.entry import CONF_DIR


def composed(config_name: str, overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=list(overrides))
