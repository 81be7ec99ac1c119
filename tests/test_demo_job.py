"""`make demo`'s job, exactly as configured, learns the demo corpus well above chance."""

from __future__ import annotations

from pathlib import Path

from segser.train import train
from tests.hydra_app import composed


def test_demo_experiment_reaches_alca_060(tmp_path: Path) -> None:
    cfg = composed(
        "train",
        [
            "experiment=demo",
            f"paths.data_dir={tmp_path / 'data'}",
            "callbacks.progress_bar=null",
        ],
    )
    payload = train(cfg, tmp_path / "run")
    assert payload["num_test_clips"] == 40  # 10% of the 400 demo clips
    assert payload["metrics"]["ALCA"] >= 0.6  # chance is 0.25
