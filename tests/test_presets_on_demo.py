"""Every experiment preset trains end to end on the demo corpus (one epoch, random weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segser.setup.entry import CONF_DIR
from segser.train import train
from tests.hydra_app import composed

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", PRESETS)
def test_preset_runs_on_demo(experiment: str, tmp_path_factory) -> None:
    data_dir = tmp_path_factory.getbasetemp() / "shared_data"  # one demo corpus for all presets
    out_dir = tmp_path_factory.mktemp(experiment)
    cfg = composed(
        "train",
        [
            f"experiment={experiment}",
            "dataset=demo",
            "dataset.num_clips=40",
            "backbone.weights=none",
            "trainer.max_epochs=1",
            "callbacks.progress_bar=null",
            f"paths.data_dir={data_dir}",
        ],
    )
    payload = train(cfg, out_dir)
    written = json.loads((out_dir / "metrics.json").read_text())
    assert written["metrics"] == payload["metrics"]
    assert written["num_test_clips"] > 0
