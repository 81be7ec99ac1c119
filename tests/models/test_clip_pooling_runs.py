"""clip_pooling=attention in a run: it learns from clips the segment head never trained on
(the validation clips, cross-fitted; never the training clips or their augmented passes), and
its out-of-fold validation decision is what the run reports to a search."""

from __future__ import annotations

import pytest

import segser.train as train_module
from segser.models import clip_pooling
from segser.train import train
from tests.models.test_class_weights_in_runs import tiny_run


def test_pooling_trains_on_clean_clips_and_reports_its_validation_scores(tmp_path, monkeypatch):
    seen: dict = {}
    fit, pooled = clip_pooling.fit_attention_pooling, clip_pooling.pooled_clip_results
    build = train_module.build_datamodule

    def recording_build(*args, **kwargs):
        seen["datamodule"] = build(*args, **kwargs)
        return seen["datamodule"]

    def recording_fit(train_bags, val_bags, *args, **kwargs):
        seen.setdefault("fits", []).append((train_bags, val_bags))
        return fit(train_bags, val_bags, *args, **kwargs)

    def recording_pooled(*args, **kwargs):
        seen["results"] = pooled(*args, **kwargs)
        return seen["results"]

    monkeypatch.setattr(train_module, "build_datamodule", recording_build)
    monkeypatch.setattr(clip_pooling, "fit_attention_pooling", recording_fit)
    monkeypatch.setattr(clip_pooling, "pooled_clip_results", recording_pooled)
    augment = ["augment=waveform", "augment.passes=1", "augment.waveform.speed=null"]
    pooling = ["clip_pooling=attention", "clip_pooling.max_epochs=60", "clip_pooling.lr=0.01"]
    cfg = tiny_run(tmp_path, *pooling, *augment, "dataset.num_clips=80")
    payload = train(cfg, tmp_path / "run")
    datamodule = seen["datamodule"]
    clean = datamodule.clean_train
    assert len(datamodule.datasets["train"]) == 2 * len(clean)  # augmented rows were trained on
    validation = datamodule.datasets["val"]
    for train_bags, stop_bags in seen["fits"]:  # issue 26.4: cross-fitted on the val clips
        fitted = set(train_bags.clip_ids.tolist()) | set(stop_bags.clip_ids.tolist())
        assert fitted == set(datamodule.split.val)  # no training (or augmented) clip
        segments = int(train_bags.mask.sum()) + int(stop_bags.mask.sum())
        assert segments == len(validation)  # each validation segment once
    results = seen["results"]
    assert results["val"]["UA"] != results["test"]["UA"]  # so the two cannot be mixed up
    for name in ("UA", "WA"):  # search.metric=pooled_UA reads the validation one
        assert payload["validation"][f"pooled_{name}"] == pytest.approx(results["val"][name])
        assert payload["metrics"][f"pooled_{name}"] == pytest.approx(results["test"][name])
