"""pyproject.toml's version floors admit only versions the code runs on."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_lightning_floor_accepts_weights_only_in_trainer_test() -> None:
    """train.py passes weights_only to Trainer.test after fit, which lightning < 2.6 rejects."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (lightning,) = [Requirement(d) for d in dependencies if Requirement(d).name == "lightning"]
    assert "2.5.9" not in lightning.specifier and "2.6.0" in lightning.specifier
