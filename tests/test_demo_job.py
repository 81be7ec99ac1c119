"""`make demo`'s job, exactly as configured, learns the demo corpus well above chance."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from segser.entry import CONF_DIR
from segser.train import train


def test_demo_experiment_reaches_alca_060(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=demo",
                f"paths.data_dir={tmp_path / 'data'}",
                "callbacks.progress_bar=null",
            ],
        )
    payload = train(cfg, tmp_path / "run")
    assert payload["num_test_clips"] == 40  # 10% of the 400 demo clips
    assert payload["metrics"]["ALCA"] >= 0.6  # chance is 0.25
