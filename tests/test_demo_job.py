"""`make demo`'s job, exactly as configured, learns the demo corpus well above chance."""

from __future__ import annotations

import json
from pathlib import Path

from segser.data.cache.embeddings import weights_sha256
from segser.models.factory import build_classifier
from segser.setup.components import model_config
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
    # which weights the figures came from: the packaged YAMNet as loaded, before training
    record = payload["backbone"]
    assert record["name"] == "yamnet" and record["weights"] == "packaged"
    assert record["frozen"] is cfg.backbone.freeze and "embedding_layers" in record["settings"]
    built = build_classifier(model_config(cfg))
    assert record["weights_sha256"] == weights_sha256(built.backbone)
    random = build_classifier(model_config(cfg), load_pretrained=False)
    assert record["weights_sha256"] != weights_sha256(random.backbone)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["backbone"] == record
